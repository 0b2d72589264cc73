// Workspace parts start on 256-byte boundaries (TMA descriptors and vector loads need at least 16).
#pragma once
#include <cstddef>

namespace sparsefill::cuda {

inline std::size_t align256(std::size_t n) {
  return (n + 255) / 256 * 256;
}

}  // namespace sparsefill::cuda
