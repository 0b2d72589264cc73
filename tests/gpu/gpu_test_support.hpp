// Shared by the GPU tests: the skip rule, device checks and a device buffer with poisoning.
#pragma once
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <functional>

#include "sparsefill/device.hpp"

namespace sparsefill::testing {

#define SKIP_WITHOUT_GPU() \
  if (::sparsefill::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device: " << ::sparsefill::cuda_device_description()

inline bool gpu_is_sm90() {
  int device = 0, major = 0;
  return cudaGetDevice(&device) == cudaSuccess &&
         cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess && major == 9;
}

inline void ok(cudaError_t status) {
  ASSERT_EQ(status, cudaSuccess) << cudaGetErrorString(status);
}

class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    EXPECT_EQ(cudaMalloc(&ptr_, std::max<std::size_t>(bytes, 1)), cudaSuccess);
  }
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return ptr_; }
  void upload(const void* host) { upload(host, bytes_, 0); }
  // Copies `bytes` from the host to `offset` bytes into the buffer.
  void upload(const void* host, std::size_t bytes, std::size_t offset) {
    ASSERT_LE(bytes + offset, bytes_);
    EXPECT_EQ(cudaMemcpy(static_cast<char*>(ptr_) + offset, host, bytes, cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  void download(void* host) const {
    EXPECT_EQ(cudaMemcpy(host, ptr_, bytes_, cudaMemcpyDeviceToHost), cudaSuccess);
  }
  void poison() { EXPECT_EQ(cudaMemset(ptr_, 0xFF, bytes_), cudaSuccess); }  // NaN in bf16, fp16 and fp32

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_;
};


// Captures `work` (launches on the given stream) into a CUDA graph, calls `before_launch` (e.g. to poison the
// outputs), replays the graph once and waits for it.
inline void replay_in_graph(const std::function<void(cudaStream_t)>& work, const std::function<void()>& before_launch) {
  cudaStream_t stream;
  ok(cudaStreamCreate(&stream));
  cudaGraph_t graph;
  ok(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  work(stream);
  ok(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec;
  ok(cudaGraphInstantiate(&exec, graph, 0));
  before_launch();
  ok(cudaGraphLaunch(exec, stream));
  ok(cudaStreamSynchronize(stream));
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

}  // namespace sparsefill::testing
