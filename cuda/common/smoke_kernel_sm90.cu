// A minimal sm_90a kernel that proves the toolchain and the device agree: each thread writes a known function
// of its index, and the host checks every element.
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "sparsefill/device.hpp"

namespace sparsefill {
namespace {

__global__ void smoke_kernel(int* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = 3 * i + 1;
}

bool fail(std::string* reason, const char* what, cudaError_t status) {
  if (reason) *reason = std::string(what) + ": " + cudaGetErrorString(status);
  cudaGetLastError();
  return false;
}

}  // namespace

bool cuda_smoke_test(std::string* reason) {
  if (cuda_device_count() == 0) {
    if (reason) *reason = "no CUDA device";
    return false;
  }
  constexpr int kCount = 1000;
  int* device = nullptr;
  cudaError_t status = cudaMalloc(&device, kCount * sizeof(int));
  if (status != cudaSuccess) return fail(reason, "cudaMalloc", status);
  cudaMemset(device, 0xFF, kCount * sizeof(int));
  smoke_kernel<<<(kCount + 255) / 256, 256>>>(device, kCount);
  status = cudaGetLastError();
  std::vector<int> host(kCount);
  if (status == cudaSuccess)
    status = cudaMemcpy(host.data(), device, kCount * sizeof(int), cudaMemcpyDeviceToHost);
  cudaFree(device);
  if (status != cudaSuccess) return fail(reason, "smoke kernel", status);
  for (int i = 0; i < kCount; ++i) {
    if (host[i] != 3 * i + 1) {
      if (reason) *reason = "smoke kernel wrote a wrong value at " + std::to_string(i);
      return false;
    }
  }
  return true;
}

}  // namespace sparsefill
