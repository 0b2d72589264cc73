// .safetensors reader/writer: u64 little-endian header length, a JSON header {name: {dtype, shape,
// data_offsets}, "__metadata__": {str: str}}, then the data. Every offset is checked against the file.
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "io/file_bytes.hpp"
#include "sparsefill/error.hpp"
#include "sparsefill/io.hpp"

namespace sparsefill {
namespace {

constexpr std::uint64_t kMaxHeader = std::uint64_t{100} << 20;

DType dtype_from_name(const std::string& name, const std::string& path) {
  if (name == "BF16") return DType::kBF16;
  if (name == "F16") return DType::kFP16;
  if (name == "F32") return DType::kFP32;
  if (name == "F64") return DType::kFP64;
  if (name == "I32") return DType::kInt32;
  if (name == "BOOL") return DType::kBool;
  throw Error(path, "unsupported safetensors dtype '" + name + "' (supported: BF16 F16 F32 F64 I32 BOOL)");
}

std::string name_of(DType dtype) {
  switch (dtype) {
    case DType::kBF16:
      return "BF16";
    case DType::kFP16:
      return "F16";
    case DType::kFP32:
      return "F32";
    case DType::kFP64:
      return "F64";
    case DType::kInt32:
      return "I32";
    case DType::kBool:
      return "BOOL";
  }
  return "";
}

}  // namespace

SafetensorsContents read_safetensors(const std::string& path) {
  const std::vector<unsigned char> bytes = read_file_bytes(path);
  require(bytes.size() >= 8, path, "truncated safetensors file (no header length)");
  std::uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  require(header_len <= kMaxHeader && header_len <= bytes.size() - 8, path, "header length exceeds the file");
  nlohmann::json header;
  try {
    header =
        nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_len));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path, std::string("malformed safetensors header: ") + e.what());
  }
  require(header.is_object(), path, "safetensors header is not a JSON object");
  const std::size_t data_size = bytes.size() - 8 - header_len;
  const unsigned char* data = bytes.data() + 8 + header_len;
  SafetensorsContents contents;
  std::set<std::pair<std::uint64_t, std::uint64_t>> ranges;
  try {
    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") {
        for (const auto& [key, value] : entry.items()) contents.metadata[key] = value.get<std::string>();
        continue;
      }
      const DType dtype = dtype_from_name(entry.at("dtype").get<std::string>(), path);
      std::vector<std::int64_t> shape;
      std::int64_t numel = 1;
      for (const auto& e : entry.at("shape")) {
        const std::int64_t extent = e.get<std::int64_t>();
        require(extent >= 0 && (extent == 0 || numel <= (std::int64_t{1} << 40) / extent), path,
                "tensor '" + name + "' has a bad shape");
        shape.push_back(extent);
        numel *= extent;
      }
      require(shape.size() <= static_cast<std::size_t>(kMaxRank), path,
              "tensor '" + name + "' has rank above 4");
      const auto begin = entry.at("data_offsets").at(0).get<std::uint64_t>();
      const auto end = entry.at("data_offsets").at(1).get<std::uint64_t>();
      require(begin <= end && end <= data_size, path, "tensor '" + name + "' data_offsets exceed the file");
      require(end - begin == static_cast<std::uint64_t>(numel) * dtype_size(dtype), path,
              "tensor '" + name + "' byte range does not match its shape and dtype");
      for (const auto& [b, e] : ranges)
        require(end <= b || begin >= e || begin == end, path, "tensor '" + name + "' overlaps another");
      ranges.insert({begin, end});
      HostTensor tensor(dtype, shape);
      if (end > begin) std::memcpy(tensor.data(), data + begin, end - begin);
      contents.tensors.emplace(name, std::move(tensor));
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(path, std::string("malformed safetensors header entry: ") + e.what());
  }
  return contents;
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, TensorView>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<std::vector<unsigned char>> blobs;
  std::uint64_t offset = 0;
  for (const auto& [name, view] : tensors) {
    require(!name.empty() && name != "__metadata__", "tensors", "invalid tensor name '" + name + "'");
    require(!header.contains(name), "tensors", "duplicate tensor name '" + name + "'");
    blobs.push_back(contiguous_bytes(view));
    std::vector<std::int64_t> shape(view.shape.begin(), view.shape.begin() + view.rank);
    header[name] = {{"dtype", name_of(view.dtype)},
                    {"shape", shape},
                    {"data_offsets", {offset, offset + blobs.back().size()}}};
    offset += blobs.back().size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  unsigned char length[8];
  for (int i = 0; i < 8; ++i)
    length[i] = static_cast<unsigned char>((static_cast<std::uint64_t>(text.size()) >> (8 * i)) & 0xFF);
  std::vector<std::pair<const void*, std::size_t>> parts = {{length, 8}, {text.data(), text.size()}};
  for (const auto& blob : blobs) parts.push_back({blob.data(), blob.size()});
  write_file_atomic(path, parts);
}

HostTensor read_tensor(const std::string& spec) {
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with(spec, ".npy")) return read_npy(spec);
  std::string path = spec, name;
  const std::size_t colon = spec.rfind(".safetensors:");
  if (colon != std::string::npos) {
    path = spec.substr(0, colon + 12);
    name = spec.substr(colon + 13);
  }
  require(ends_with(path, ".safetensors"), spec, "expected a .npy or .safetensors[:name] file");
  SafetensorsContents contents = read_safetensors(path);
  if (name.empty()) {
    require(contents.tensors.size() == 1, spec,
            "file holds " + std::to_string(contents.tensors.size()) + " tensors; name one as FILE:NAME");
    return std::move(contents.tensors.begin()->second);
  }
  auto it = contents.tensors.find(name);
  require(it != contents.tensors.end(), spec, "no tensor named '" + name + "'");
  return std::move(it->second);
}

}  // namespace sparsefill
