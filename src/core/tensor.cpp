#include "sparsefill/tensor.hpp"

#include <cmath>
#include <cstring>
#include <sstream>

#include "sparsefill/error.hpp"

namespace sparsefill {

std::int64_t TensorView::numel() const {
  std::int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= shape[i];
  return n;
}

bool TensorView::is_contiguous() const {
  std::int64_t expected = 1;
  for (int i = rank - 1; i >= 0; --i) {
    if (shape[i] != 1 && stride[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

std::string TensorView::shape_string() const {
  std::ostringstream s;
  s << "[";
  for (int i = 0; i < rank; ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

void require_data(const TensorView& view, const std::string& name) {
  require(view.data != nullptr, name,
          view.numel() == 0 ? "is empty (shape " + view.shape_string() + ")"
                            : std::string("data pointer is null"));
}

bool all_finite(const TensorView& view) {
  if (!is_floating(view.dtype) || view.rank == 0) return true;
  std::array<std::int64_t, kMaxRank> index{};
  const std::int64_t n = view.numel();
  for (std::int64_t count = 0; count < n; ++count) {
    std::int64_t offset = 0;
    for (int i = 0; i < view.rank; ++i) offset += index[i] * view.stride[i];
    if (!std::isfinite(load_as_double(view.data, view.dtype, offset))) return false;
    for (int i = view.rank - 1; i >= 0; --i) {
      if (++index[i] < view.shape[i]) break;
      index[i] = 0;
    }
  }
  return true;
}

TensorView make_view(void* data, DType dtype, const std::vector<std::int64_t>& shape) {
  require(shape.size() <= static_cast<std::size_t>(kMaxRank), "shape", "rank above 4 is not supported");
  TensorView view;
  view.data = data;
  view.dtype = dtype;
  view.rank = static_cast<int>(shape.size());
  std::int64_t stride = 1;
  for (int i = view.rank - 1; i >= 0; --i) {
    require(shape[i] >= 0, "shape", "negative extent");
    view.shape[i] = shape[i];
    view.stride[i] = stride;
    stride *= shape[i];
  }
  return view;
}

TensorView make_view(void* data, DType dtype, std::initializer_list<std::int64_t> shape) {
  return make_view(data, dtype, std::vector<std::int64_t>(shape));
}

HostTensor::HostTensor(DType dtype, std::vector<std::int64_t> shape)
    : dtype_(dtype), shape_(std::move(shape)) {
  require(shape_.size() <= static_cast<std::size_t>(kMaxRank), "shape", "rank above 4 is not supported");
  std::int64_t n = 1;
  for (auto extent : shape_) {
    require(extent >= 0, "shape", "negative extent");
    require(extent == 0 || n <= (std::int64_t{1} << 40) / extent, "shape",
            "tensor larger than 2^40 elements");
    n *= extent;
  }
  bytes_.assign(static_cast<std::size_t>(n) * dtype_size(dtype_), 0);
}

std::int64_t HostTensor::numel() const {
  std::int64_t n = 1;
  for (auto extent : shape_) n *= extent;
  return n;
}

HostTensor HostTensor::clone() const {
  HostTensor copy(dtype_, shape_);
  if (!bytes_.empty()) std::memcpy(copy.bytes_.data(), bytes_.data(), bytes_.size());
  return copy;
}

TensorView HostTensor::view() const {
  return make_view(const_cast<unsigned char*>(bytes_.data()), dtype_, shape_);
}

std::vector<double> HostTensor::to_doubles() const {
  require(is_floating(dtype_) || dtype_ == DType::kInt32 || dtype_ == DType::kBool, "tensor", "not numeric");
  std::vector<double> values(static_cast<std::size_t>(numel()));
  for (std::int64_t i = 0; i < numel(); ++i) values[i] = load_as_double(bytes_.data(), dtype_, i);
  return values;
}

HostTensor HostTensor::converted(DType dtype) const {
  require(is_floating(dtype_) && is_floating(dtype), "dtype",
          "conversion is defined between floating dtypes");
  HostTensor out(dtype, shape_);
  for (std::int64_t i = 0; i < numel(); ++i) {
    store_from_double(out.data(), dtype, i, load_as_double(bytes_.data(), dtype_, i));
  }
  return out;
}

}  // namespace sparsefill
