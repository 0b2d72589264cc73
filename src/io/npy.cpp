// .npy reader/writer (format versions 1.0-3.0, little-endian, C order only).
#include <cstring>
#include <regex>
#include <string>

#include "io/file_bytes.hpp"
#include "sparsefill/error.hpp"
#include "sparsefill/io.hpp"

namespace sparsefill {
namespace {

const unsigned char kMagic[] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

DType dtype_from_descr(const std::string& descr, const std::string& path) {
  if (descr == "<f4") return DType::kFP32;
  if (descr == "<f8") return DType::kFP64;
  if (descr == "<f2") return DType::kFP16;
  if (descr == "<i4") return DType::kInt32;
  if (descr == "|b1") return DType::kBool;
  if (descr == "<V2" || descr == "|V2") return DType::kBF16;
  throw Error(path,
              "unsupported .npy dtype '" + descr + "' (supported: <f4 <f8 <f2 <i4 |b1 and <V2 for bf16)");
}

std::string descr_of(DType dtype) {
  switch (dtype) {
    case DType::kFP32:
      return "<f4";
    case DType::kFP64:
      return "<f8";
    case DType::kFP16:
      return "<f2";
    case DType::kInt32:
      return "<i4";
    case DType::kBool:
      return "|b1";
    case DType::kBF16:
      return "<V2";
  }
  return "";
}

}  // namespace

HostTensor read_npy(const std::string& path) {
  const std::vector<unsigned char> bytes = read_file_bytes(path);
  require(bytes.size() >= 10 && std::memcmp(bytes.data(), kMagic, 6) == 0, path,
          "not a .npy file (bad magic)");
  const int major = bytes[6];
  require(major >= 1 && major <= 3, path, "unsupported .npy version " + std::to_string(major));
  std::size_t header_len, header_start;
  if (major == 1) {
    header_len = bytes[8] | (bytes[9] << 8);
    header_start = 10;
  } else {
    require(bytes.size() >= 12, path, "truncated .npy header");
    header_len = bytes[8] | (bytes[9] << 8) | (bytes[10] << 16) | (static_cast<std::size_t>(bytes[11]) << 24);
    header_start = 12;
  }
  require(header_len <= bytes.size() - header_start, path, "truncated .npy header");
  const std::string header(reinterpret_cast<const char*>(bytes.data() + header_start), header_len);
  std::smatch m;
  require(std::regex_search(header, m, std::regex("'descr'\\s*:\\s*'([^']*)'")), path,
          "header lacks 'descr'");
  const DType dtype = dtype_from_descr(m[1].str(), path);
  require(std::regex_search(header, m, std::regex("'fortran_order'\\s*:\\s*(True|False)")), path,
          "header lacks 'fortran_order'");
  require(m[1].str() == "False", path, "Fortran-order arrays are not supported");
  require(std::regex_search(header, m, std::regex("'shape'\\s*:\\s*\\(([^)]*)\\)")), path,
          "header lacks 'shape'");
  std::vector<std::int64_t> shape;
  const std::string dims = m[1].str();
  const std::regex number("\\s*(\\d+)\\s*(,|$)");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), number); it != std::sregex_iterator(); ++it) {
    require((*it)[1].str().size() <= 12, path, "shape extent too large");
    shape.push_back(std::stoll((*it)[1].str()));
  }
  require(shape.size() <= static_cast<std::size_t>(kMaxRank), path, "rank above 4 is not supported");
  std::int64_t numel = 1;
  for (auto e : shape) {
    require(e == 0 || numel <= (std::int64_t{1} << 40) / e, path, "shape too large");
    numel *= e;
  }
  const std::size_t data_start = header_start + header_len;
  const std::size_t expected = static_cast<std::size_t>(numel) * dtype_size(dtype);
  require(bytes.size() - data_start == expected, path,
          "data size " + std::to_string(bytes.size() - data_start) +
              " bytes does not match shape and dtype (" + std::to_string(expected) + " bytes)");
  HostTensor tensor(dtype, shape);
  if (expected) std::memcpy(tensor.data(), bytes.data() + data_start, expected);
  if (dtype == DType::kBool) {
    for (std::int64_t i = 0; i < numel; ++i)
      require(tensor.ptr<unsigned char>()[i] <= 1, path, "bool entries must be 0 or 1");
  }
  return tensor;
}

void write_npy(const std::string& path, const TensorView& tensor) {
  std::string shape = "(";
  for (int i = 0; i < tensor.rank; ++i)
    shape += std::to_string(tensor.shape[i]) + (tensor.rank == 1 ? "," : i + 1 < tensor.rank ? ", " : "");
  shape += ")";
  std::string header =
      "{'descr': '" + descr_of(tensor.dtype) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::vector<unsigned char> prefix(kMagic, kMagic + 6);
  prefix.push_back(1);
  prefix.push_back(0);
  prefix.push_back(static_cast<unsigned char>(header.size() & 0xFF));
  prefix.push_back(static_cast<unsigned char>(header.size() >> 8));
  const std::vector<unsigned char> data = contiguous_bytes(tensor);
  write_file_atomic(
      path, {{prefix.data(), prefix.size()}, {header.data(), header.size()}, {data.data(), data.size()}});
}

}  // namespace sparsefill
