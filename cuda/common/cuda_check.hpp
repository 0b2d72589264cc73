// Host-side CUDA status and pointer checks shared by the launchers.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "sparsefill/error.hpp"

namespace sparsefill::cuda {

inline void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw Error("cuda", std::string(what) + ": " + cudaGetErrorString(status));
}

inline bool is_device_pointer(const void* ptr) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, ptr) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged;
}

}  // namespace sparsefill::cuda
