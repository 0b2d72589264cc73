// An owning device allocation for the host-tensor entry points (tools and tests; serving code brings its own
// memory), and an upload helper. Errors are Error("device").
#pragma once
#include <cuda_runtime.h>

#include <string>
#include <utility>

#include "sparsefill/error.hpp"

namespace sparsefill::cuda {

class DeviceArray {
 public:
  explicit DeviceArray(std::size_t bytes) {
    const cudaError_t status = cudaMalloc(&ptr_, bytes ? bytes : 1);
    if (status != cudaSuccess) throw Error("device", std::string("cudaMalloc: ") + cudaGetErrorString(status));
  }
  ~DeviceArray() { cudaFree(ptr_); }
  DeviceArray(DeviceArray&& other) noexcept : ptr_(std::exchange(other.ptr_, nullptr)) {}
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  void* get() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
};

inline void check_device(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw Error("device", std::string(what) + ": " + cudaGetErrorString(status));
}

inline DeviceArray upload(const void* host, std::size_t bytes) {
  DeviceArray array(bytes);
  check_device(cudaMemcpy(array.get(), host, bytes, cudaMemcpyHostToDevice), "copy to device");
  return array;
}

}  // namespace sparsefill::cuda
