// Tensor views (non-owning, strided) and host tensors (owning, contiguous).
//
// Attention tensors follow FlashAttention: q [batch, seqlen_q, heads_q, head_dim], k/v [batch, seqlen_k,
// heads_kv, head_dim]; varlen packs sequences as [total_tokens, heads, head_dim] with cu_seqlens. Strides are
// int64, in elements; the last dimension must be contiguous for attention inputs.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "sparsefill/dtype.hpp"

namespace sparsefill {

inline constexpr int kMaxRank = 4;

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kFP32;
  int rank = 0;
  std::array<std::int64_t, kMaxRank> shape{};
  std::array<std::int64_t, kMaxRank> stride{};  // in elements

  std::int64_t numel() const;
  bool is_contiguous() const;
  std::string shape_string() const;  // "[1, 4096, 32, 128]"
  template <typename T>
  T* ptr() const {
    return static_cast<T*>(data);
  }
};

// Throws Error(name) when `view` has no data: an empty view (an extent of 0) is named as empty, any other as
// a null data pointer.
void require_data(const TensorView& view, const std::string& name);

// True when every element of a floating view (any strides) is finite; other dtypes are always finite.
bool all_finite(const TensorView& view);

// A contiguous (row-major) view of `data` with `shape`.
TensorView make_view(void* data, DType dtype, std::initializer_list<std::int64_t> shape);
TensorView make_view(void* data, DType dtype, const std::vector<std::int64_t>& shape);

// Owning contiguous host tensor. Moves cheaply; copying is explicit through clone().
class HostTensor {
 public:
  HostTensor() = default;
  HostTensor(DType dtype, std::vector<std::int64_t> shape);  // zero-initialised
  HostTensor(HostTensor&&) noexcept = default;
  HostTensor& operator=(HostTensor&&) noexcept = default;
  HostTensor(const HostTensor&) = delete;
  HostTensor& operator=(const HostTensor&) = delete;

  HostTensor clone() const;
  TensorView view() const;
  DType dtype() const { return dtype_; }
  const std::vector<std::int64_t>& shape() const { return shape_; }
  std::int64_t numel() const;
  std::size_t size_bytes() const { return bytes_.size(); }
  void* data() { return bytes_.data(); }
  const void* data() const { return bytes_.data(); }
  template <typename T>
  T* ptr() {
    return reinterpret_cast<T*>(bytes_.data());
  }
  template <typename T>
  const T* ptr() const {
    return reinterpret_cast<const T*>(bytes_.data());
  }
  bool empty() const { return shape_.empty(); }

  // Every element of a floating tensor as double (for metrics and tests).
  std::vector<double> to_doubles() const;
  // A copy converted to another floating dtype.
  HostTensor converted(DType dtype) const;

 private:
  DType dtype_ = DType::kFP32;
  std::vector<std::int64_t> shape_;
  std::vector<unsigned char> bytes_;
};

}  // namespace sparsefill
