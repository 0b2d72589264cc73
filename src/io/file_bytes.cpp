#include "io/file_bytes.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "sparsefill/error.hpp"
#include "sparsefill/io.hpp"

namespace sparsefill {

std::vector<unsigned char> read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  require(static_cast<bool>(in), path, "cannot open file for reading");
  const std::streamoff size = in.tellg();
  require(size >= 0 && static_cast<std::size_t>(size) <= kMaxFileBytes, path,
          "file size unreadable or above 64 GiB");
  std::vector<unsigned char> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), size);
  require(in.gcount() == size, path, "short read");
  return bytes;
}

// A contiguous copy of any strided view.
std::vector<unsigned char> contiguous_bytes(const TensorView& t) {
  const std::size_t es = dtype_size(t.dtype);
  std::vector<unsigned char> bytes(static_cast<std::size_t>(t.numel()) * es);
  std::int64_t index[kMaxRank] = {};
  for (std::int64_t n = 0; n < t.numel(); ++n) {
    std::int64_t offset = 0;
    for (int i = 0; i < t.rank; ++i) offset += index[i] * t.stride[i];
    std::memcpy(bytes.data() + n * es, static_cast<const unsigned char*>(t.data) + offset * es, es);
    for (int i = t.rank - 1; i >= 0; --i) {
      if (++index[i] < t.shape[i]) break;
      index[i] = 0;
    }
  }
  return bytes;
}

void write_file_atomic(const std::string& path,
                       const std::vector<std::pair<const void*, std::size_t>>& parts) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  bool ok;
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    ok = static_cast<bool>(out);
    for (const auto& [data, size] : parts) {
      if (!ok) break;
      out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
      ok = static_cast<bool>(out);
    }
    out.close();
    ok = ok && !out.fail();
  }
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(path, "cannot write file");
  }
}

void write_text_file(const std::string& path, const std::string& text) {
  write_file_atomic(path, {{text.data(), text.size()}});
}

}  // namespace sparsefill
