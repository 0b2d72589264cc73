#include "support/gguf_writer.hpp"

#include <cstring>

namespace sparsefill::testing {
namespace {

template <typename T>
void put(std::vector<unsigned char>& out, T value) {
  unsigned char raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));
  out.insert(out.end(), raw, raw + sizeof(T));
}

void put_string(std::vector<unsigned char>& out, const std::string& s) {
  put<std::uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

}  // namespace

void GgufWriter::add_uint32(const std::string& key, std::uint32_t value) {
  put_string(metadata_, key);
  put<std::uint32_t>(metadata_, 4);
  put(metadata_, value);
  ++metadata_count_;
}

void GgufWriter::add_float32(const std::string& key, float value) {
  put_string(metadata_, key);
  put<std::uint32_t>(metadata_, 6);
  put(metadata_, value);
  ++metadata_count_;
}

void GgufWriter::add_bool(const std::string& key, std::uint8_t value) {
  put_string(metadata_, key);
  put<std::uint32_t>(metadata_, 7);
  put(metadata_, value);
  ++metadata_count_;
}

void GgufWriter::add_string(const std::string& key, const std::string& value) {
  put_string(metadata_, key);
  put<std::uint32_t>(metadata_, 8);
  put_string(metadata_, value);
  ++metadata_count_;
}

void GgufWriter::add_string_array(const std::string& key, const std::vector<std::string>& values) {
  put_string(metadata_, key);
  put<std::uint32_t>(metadata_, 9);
  put<std::uint32_t>(metadata_, 8);
  put<std::uint64_t>(metadata_, values.size());
  for (const auto& v : values) put_string(metadata_, v);
  ++metadata_count_;
}

void GgufWriter::add_int32_array(const std::string& key, const std::vector<std::int32_t>& values) {
  put_string(metadata_, key);
  put<std::uint32_t>(metadata_, 9);
  put<std::uint32_t>(metadata_, 5);
  put<std::uint64_t>(metadata_, values.size());
  for (auto v : values) put(metadata_, v);
  ++metadata_count_;
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<std::uint64_t>& dims,
                            std::uint32_t type, const std::vector<unsigned char>& data) {
  tensors_.push_back({name, dims, type, data});
}

std::vector<unsigned char> GgufWriter::bytes(std::uint32_t version, std::uint64_t alignment) const {
  std::vector<unsigned char> out = {'G', 'G', 'U', 'F'};
  put<std::uint32_t>(out, version);
  put<std::uint64_t>(out, tensors_.size());
  put<std::uint64_t>(out, metadata_count_);
  out.insert(out.end(), metadata_.begin(), metadata_.end());
  std::uint64_t offset = 0;
  std::vector<std::uint64_t> offsets;
  for (const auto& t : tensors_) {
    put_string(out, t.name);
    put<std::uint32_t>(out, static_cast<std::uint32_t>(t.dims.size()));
    for (auto d : t.dims) put<std::uint64_t>(out, d);
    put<std::uint32_t>(out, t.type);
    put<std::uint64_t>(out, offset);
    offsets.push_back(offset);
    offset = (offset + t.data.size() + alignment - 1) / alignment * alignment;
  }
  while (out.size() % alignment) out.push_back(0);
  const std::size_t data_start = out.size();
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    out.resize(data_start + offsets[i], 0);
    out.insert(out.end(), tensors_[i].data.begin(), tensors_[i].data.end());
  }
  return out;
}

}  // namespace sparsefill::testing
