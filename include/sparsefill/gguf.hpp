// GGUF model files (llama.cpp's format): header, metadata, tensor table, and dequantisation of F32, F16, Q8_0
// and Q4_1 tensors to fp32. Every field is checked against the file before it is used: a truncated or
// corrupted file is an Error naming the path, never a read past the end.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sparsefill/tensor.hpp"

namespace sparsefill {

enum class GgufValueType : std::uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12
};

struct GgufValue {
  GgufValueType type = GgufValueType::kUint8;
  std::uint64_t uint_value = 0;  // unsigned integers and bool
  std::int64_t int_value = 0;    // signed integers
  double float_value = 0.0;      // float32 / float64
  std::string string_value;
  GgufValueType element_type = GgufValueType::kUint8;  // arrays
  std::vector<GgufValue> array;
};

// ggml tensor types read here (others are listed in the tensor table but cannot be dequantised).
enum class GgmlType : std::uint32_t { kF32 = 0, kF16 = 1, kQ4_1 = 3, kQ8_0 = 8 };

struct GgufTensorInfo {
  std::string name;
  std::vector<std::int64_t> dims;  // ggml order: dims[0] is the contiguous one
  std::uint32_t type = 0;
  std::uint64_t offset = 0;  // from the start of the data section
  std::uint64_t bytes = 0;
};

class GgufFile {
 public:
  static GgufFile read(const std::string& path);

  std::uint32_t version() const { return version_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }

  // Typed metadata access; Error(path) naming the key when it is missing or of another type.
  std::uint64_t get_uint(const std::string& key) const;
  double get_float(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  std::vector<std::string> get_strings(const std::string& key) const;
  std::vector<std::int64_t> get_ints(const std::string& key) const;
  bool has(const std::string& key) const { return metadata_.count(key) > 0; }

  const GgufTensorInfo& tensor(const std::string& name) const;  // Error when absent
  // fp32 tensor in row-major order, shape = dims reversed (the contiguous ggml dim last).
  HostTensor dequantize(const std::string& name) const;

 private:
  std::string path_;
  std::uint32_t version_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::vector<unsigned char> bytes_;
  std::uint64_t data_start_ = 0;
};

// Dequantise `count` elements of one ggml type from raw bytes (count a multiple of the type's block).
void dequantize_ggml(GgmlType type, const unsigned char* src, std::int64_t count, float* dst);

}  // namespace sparsefill
