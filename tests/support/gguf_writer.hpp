// Builds small GGUF files byte by byte for the reader's tests.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sparsefill::testing {

class GgufWriter {
 public:
  void add_uint32(const std::string& key, std::uint32_t value);
  void add_float32(const std::string& key, float value);
  void add_bool(const std::string& key, std::uint8_t value);
  void add_string(const std::string& key, const std::string& value);
  void add_string_array(const std::string& key, const std::vector<std::string>& values);
  void add_int32_array(const std::string& key, const std::vector<std::int32_t>& values);
  // A tensor with ggml dims (dims[0] contiguous), ggml type and raw data bytes.
  void add_tensor(const std::string& name, const std::vector<std::uint64_t>& dims, std::uint32_t type,
                  const std::vector<unsigned char>& data);
  std::vector<unsigned char> bytes(std::uint32_t version = 3, std::uint64_t alignment = 32) const;

 private:
  std::vector<unsigned char> metadata_;
  std::uint64_t metadata_count_ = 0;
  struct Tensor {
    std::string name;
    std::vector<std::uint64_t> dims;
    std::uint32_t type;
    std::vector<unsigned char> data;
  };
  std::vector<Tensor> tensors_;
};

}  // namespace sparsefill::testing
