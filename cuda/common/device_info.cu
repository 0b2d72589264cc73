// Device queries through the CUDA runtime. Without a driver or device every call reports "none".
#include <cuda_runtime.h>

#include <string>

#include "sparsefill/device.hpp"

namespace sparsefill {

bool built_with_cuda() {
  return true;
}

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

std::string cuda_device_description() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    if (status == cudaErrorInsufficientDriver || status == cudaErrorNoDevice)
      return "none (no CUDA driver or device)";
    return std::string("none (") + cudaGetErrorString(status) + ")";
  }
  if (count == 0) return "none (no CUDA device)";
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return "unknown device";
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
}

}  // namespace sparsefill
