// GGUF reader (design note): the whole file is read once; a cursor reads every scalar, string and array
// through one bounds-checked function, so no field can point past the end. Counts are checked against the
// bytes that remain before anything is reserved; tensor offsets, sizes and alignment are checked against the
// data section.
#include "sparsefill/gguf.hpp"

#include <cstring>

#include "io/file_bytes.hpp"
#include "sparsefill/dtype.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

constexpr std::uint64_t kMaxCount = std::uint64_t{1} << 24;  // tensors, keys, array elements
constexpr int kMaxDims = 4;
constexpr int kMaxNesting = 2;

class Cursor {
 public:
  Cursor(const std::vector<unsigned char>& bytes, const std::string& path) : bytes_(bytes), path_(path) {}
  void need(std::uint64_t n, const char* what) const {
    require(n <= bytes_.size() - pos_, path_, std::string("truncated file (reading ") + what + ")");
  }
  template <typename T>
  T scalar(const char* what) {
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  std::string string(const char* what) {
    const auto length = scalar<std::uint64_t>(what);
    need(length, what);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), static_cast<std::size_t>(length));
    pos_ += length;
    return s;
  }
  std::uint64_t count(const char* what, std::uint64_t min_element_bytes) {
    const auto n = scalar<std::uint64_t>(what);
    require(n <= kMaxCount, path_, std::string("implausible count in ") + what);
    need(n * min_element_bytes, what);
    return n;
  }
  std::uint64_t position() const { return pos_; }
  const std::string& path() const { return path_; }

 private:
  const std::vector<unsigned char>& bytes_;
  std::string path_;
  std::uint64_t pos_ = 0;
};

std::uint64_t value_min_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32:
      return 4;
    default:
      return 8;  // 64-bit scalars, string lengths, array headers (at least 12)
  }
}

GgufValue read_value(Cursor& c, GgufValueType type, int depth) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufValueType::kUint8:
      v.uint_value = c.scalar<std::uint8_t>("value");
      break;
    case GgufValueType::kInt8:
      v.int_value = c.scalar<std::int8_t>("value");
      break;
    case GgufValueType::kUint16:
      v.uint_value = c.scalar<std::uint16_t>("value");
      break;
    case GgufValueType::kInt16:
      v.int_value = c.scalar<std::int16_t>("value");
      break;
    case GgufValueType::kUint32:
      v.uint_value = c.scalar<std::uint32_t>("value");
      break;
    case GgufValueType::kInt32:
      v.int_value = c.scalar<std::int32_t>("value");
      break;
    case GgufValueType::kFloat32:
      v.float_value = c.scalar<float>("value");
      break;
    case GgufValueType::kBool: {
      const auto b = c.scalar<std::uint8_t>("value");
      require(b <= 1, c.path(), "bool value other than 0 or 1");
      v.uint_value = b;
      break;
    }
    case GgufValueType::kString:
      v.string_value = c.string("string value");
      break;
    case GgufValueType::kUint64:
      v.uint_value = c.scalar<std::uint64_t>("value");
      break;
    case GgufValueType::kInt64:
      v.int_value = c.scalar<std::int64_t>("value");
      break;
    case GgufValueType::kFloat64:
      v.float_value = c.scalar<double>("value");
      break;
    case GgufValueType::kArray: {
      require(depth < kMaxNesting, c.path(), "arrays nested too deeply");
      const auto element = c.scalar<std::uint32_t>("array type");
      require(element <= 12, c.path(), "unknown array element type " + std::to_string(element));
      v.element_type = static_cast<GgufValueType>(element);
      const std::uint64_t n = c.count("array length", value_min_bytes(v.element_type));
      v.array.reserve(static_cast<std::size_t>(n));
      for (std::uint64_t i = 0; i < n; ++i) v.array.push_back(read_value(c, v.element_type, depth + 1));
      break;
    }
  }
  return v;
}

// Elements per block and bytes per block of each readable ggml type.
bool type_layout(std::uint32_t type, std::int64_t* block, std::int64_t* block_bytes) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::kF32:
      *block = 1, *block_bytes = 4;
      return true;
    case GgmlType::kF16:
      *block = 1, *block_bytes = 2;
      return true;
    case GgmlType::kQ4_1:
      *block = 32, *block_bytes = 20;
      return true;
    case GgmlType::kQ8_0:
      *block = 32, *block_bytes = 34;
      return true;
  }
  return false;
}

const GgufValue& lookup(const std::map<std::string, GgufValue>& m, const std::string& key,
                        const std::string& path) {
  auto it = m.find(key);
  require(it != m.end(), path, "metadata key '" + key + "' is missing");
  return it->second;
}

}  // namespace

void dequantize_ggml(GgmlType type, const unsigned char* src, std::int64_t count, float* dst) {
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, src, static_cast<std::size_t>(count) * 4);
      return;
    case GgmlType::kF16:
      for (std::int64_t i = 0; i < count; ++i) {
        std::uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = fp16_to_float(h);
      }
      return;
    case GgmlType::kQ8_0:  // block: fp16 scale d, 32 int8 q; x = d * q
      for (std::int64_t b = 0; b < count / 32; ++b) {
        const unsigned char* block = src + b * 34;
        std::uint16_t h;
        std::memcpy(&h, block, 2);
        const float d = fp16_to_float(h);
        for (int j = 0; j < 32; ++j)
          dst[b * 32 + j] = d * static_cast<float>(static_cast<std::int8_t>(block[2 + j]));
      }
      return;
    case GgmlType::kQ4_1:  // block: fp16 d, fp16 m, 16 bytes; x[j] = d * low nibble + m, x[j + 16] = d * high
                           // + m
      for (std::int64_t b = 0; b < count / 32; ++b) {
        const unsigned char* block = src + b * 20;
        std::uint16_t hd, hm;
        std::memcpy(&hd, block, 2);
        std::memcpy(&hm, block + 2, 2);
        const float d = fp16_to_float(hd), m = fp16_to_float(hm);
        for (int j = 0; j < 16; ++j) {
          dst[b * 32 + j] = d * static_cast<float>(block[4 + j] & 0x0F) + m;
          dst[b * 32 + j + 16] = d * static_cast<float>(block[4 + j] >> 4) + m;
        }
      }
      return;
  }
  throw Error("type", "unsupported ggml type " + std::to_string(static_cast<std::uint32_t>(type)));
}

GgufFile GgufFile::read(const std::string& path) {
  GgufFile f;
  f.path_ = path;
  f.bytes_ = read_file_bytes(path);
  Cursor c(f.bytes_, path);
  c.need(4, "magic");
  require(std::memcmp(f.bytes_.data(), "GGUF", 4) == 0, path, "not a GGUF file (bad magic)");
  c.scalar<std::uint32_t>("magic");
  f.version_ = c.scalar<std::uint32_t>("version");
  require(f.version_ == 2 || f.version_ == 3, path, "unsupported GGUF version " + std::to_string(f.version_));
  const auto tensor_count = c.scalar<std::uint64_t>("tensor count");
  const auto kv_count = c.scalar<std::uint64_t>("metadata count");
  require(tensor_count <= kMaxCount && kv_count <= kMaxCount, path, "implausible tensor or metadata count");
  for (std::uint64_t i = 0; i < kv_count; ++i) {
    std::string key = c.string("metadata key");
    const auto type = c.scalar<std::uint32_t>("metadata type");
    require(type <= 12, path, "metadata '" + key + "' has unknown type " + std::to_string(type));
    GgufValue value = read_value(c, static_cast<GgufValueType>(type), 0);
    require(f.metadata_.emplace(std::move(key), std::move(value)).second, path, "duplicate metadata key");
  }
  std::uint64_t alignment = 32;
  if (f.has("general.alignment")) {
    alignment = f.get_uint("general.alignment");
    require(alignment >= 1 && alignment <= 4096 && (alignment & (alignment - 1)) == 0, path,
            "bad general.alignment");
  }
  for (std::uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorInfo t;
    t.name = c.string("tensor name");
    const auto n_dims = c.scalar<std::uint32_t>("tensor dims");
    require(n_dims >= 1 && n_dims <= kMaxDims, path,
            "tensor '" + t.name + "' has " + std::to_string(n_dims) + " dims");
    std::int64_t elements = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const auto extent = c.scalar<std::uint64_t>("tensor dim");
      require(extent >= 1 && extent <= (std::uint64_t{1} << 32) &&
                  static_cast<std::uint64_t>(elements) * extent <= (std::uint64_t{1} << 40),
              path, "tensor '" + t.name + "' has an implausible shape");
      t.dims.push_back(static_cast<std::int64_t>(extent));
      elements *= static_cast<std::int64_t>(extent);
    }
    t.type = c.scalar<std::uint32_t>("tensor type");
    t.offset = c.scalar<std::uint64_t>("tensor offset");
    std::int64_t block = 0, block_bytes = 0;
    if (type_layout(t.type, &block, &block_bytes)) {
      require(t.dims[0] % block == 0, path, "tensor '" + t.name + "' rows are not whole blocks");
      t.bytes = static_cast<std::uint64_t>(elements / block * block_bytes);
    }
    require(t.offset % alignment == 0, path, "tensor '" + t.name + "' offset is not aligned");
    f.tensors_.push_back(std::move(t));
  }
  f.data_start_ = (c.position() + alignment - 1) / alignment * alignment;
  require(f.data_start_ <= f.bytes_.size(), path, "truncated file (no data section)");
  const std::uint64_t data_size = f.bytes_.size() - f.data_start_;
  for (const auto& t : f.tensors_) {
    require(t.offset <= data_size && t.bytes <= data_size - t.offset, path,
            "tensor '" + t.name + "' data lies past the end of the file");
  }
  return f;
}

std::uint64_t GgufFile::get_uint(const std::string& key) const {
  const GgufValue& v = lookup(metadata_, key, path_);
  require(v.type == GgufValueType::kUint8 || v.type == GgufValueType::kUint16 ||
              v.type == GgufValueType::kUint32 || v.type == GgufValueType::kUint64 ||
              ((v.type == GgufValueType::kInt32 || v.type == GgufValueType::kInt64) && v.int_value >= 0),
          path_, "metadata '" + key + "' is not a non-negative integer");
  return v.type == GgufValueType::kInt32 || v.type == GgufValueType::kInt64
             ? static_cast<std::uint64_t>(v.int_value)
             : v.uint_value;
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = lookup(metadata_, key, path_);
  require(v.type == GgufValueType::kFloat32 || v.type == GgufValueType::kFloat64, path_,
          "metadata '" + key + "' is not a float");
  return v.float_value;
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = lookup(metadata_, key, path_);
  require(v.type == GgufValueType::kString, path_, "metadata '" + key + "' is not a string");
  return v.string_value;
}

std::vector<std::string> GgufFile::get_strings(const std::string& key) const {
  const GgufValue& v = lookup(metadata_, key, path_);
  require(v.type == GgufValueType::kArray && v.element_type == GgufValueType::kString, path_,
          "metadata '" + key + "' is not a string array");
  std::vector<std::string> out;
  for (const auto& e : v.array) out.push_back(e.string_value);
  return out;
}

std::vector<std::int64_t> GgufFile::get_ints(const std::string& key) const {
  const GgufValue& v = lookup(metadata_, key, path_);
  require(v.type == GgufValueType::kArray && v.element_type != GgufValueType::kString &&
              v.element_type != GgufValueType::kArray && v.element_type != GgufValueType::kFloat32 &&
              v.element_type != GgufValueType::kFloat64,
          path_, "metadata '" + key + "' is not an integer array");
  std::vector<std::int64_t> out;
  const bool is_signed = v.element_type == GgufValueType::kInt8 || v.element_type == GgufValueType::kInt16 ||
                         v.element_type == GgufValueType::kInt32 || v.element_type == GgufValueType::kInt64;
  for (const auto& e : v.array)
    out.push_back(is_signed ? e.int_value : static_cast<std::int64_t>(e.uint_value));
  return out;
}

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
  for (const auto& t : tensors_) {
    if (t.name == name) return t;
  }
  throw Error(path_, "no tensor named '" + name + "'");
}

HostTensor GgufFile::dequantize(const std::string& name) const {
  const GgufTensorInfo& t = tensor(name);
  std::int64_t block = 0, block_bytes = 0;
  require(type_layout(t.type, &block, &block_bytes), path_,
          "tensor '" + name + "' has a type that cannot be dequantised: " + std::to_string(t.type));
  std::vector<std::int64_t> shape(t.dims.rbegin(), t.dims.rend());
  HostTensor out(DType::kFP32, shape);
  dequantize_ggml(static_cast<GgmlType>(t.type), bytes_.data() + data_start_ + t.offset, out.numel(),
                  out.ptr<float>());
  return out;
}

}  // namespace sparsefill
