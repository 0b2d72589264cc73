// Whole-file reads with a size cap, and atomic writes (temporary file + rename), for every file format.
#pragma once
#include <string>
#include <vector>

#include "sparsefill/tensor.hpp"

namespace sparsefill {

inline constexpr std::size_t kMaxFileBytes = std::size_t{1} << 36;  // 64 GiB

std::vector<unsigned char> read_file_bytes(const std::string& path);
// The elements of any strided view, packed in row-major order.
std::vector<unsigned char> contiguous_bytes(const TensorView& t);

// Writes `parts` one after the other to `path` through `path.tmp.<pid>`; on any failure removes the temporary
// file and throws Error(path), leaving an existing `path` untouched.
void write_file_atomic(const std::string& path,
                       const std::vector<std::pair<const void*, std::size_t>>& parts);

}  // namespace sparsefill
