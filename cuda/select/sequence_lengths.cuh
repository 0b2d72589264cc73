// Per-sequence lengths of a fixed-length or varlen batch, for the selection kernels.
#pragma once
#include <cstdint>

namespace sparsefill::cuda::select {

// Per-sequence lengths: fixed (every sequence lq / lk tokens) or varlen (device cu_seqlens [batch + 1]).
struct Lengths {
  const std::int32_t* cu_q = nullptr;
  const std::int32_t* cu_k = nullptr;
  int lq = 0, lk = 0, block = 128;
  __device__ int q_start(int b) const { return cu_q ? cu_q[b] : 0; }
  __device__ int k_start(int b) const { return cu_k ? cu_k[b] : 0; }
  __device__ int q(int b) const { return cu_q ? cu_q[b + 1] - cu_q[b] : lq; }
  __device__ int k(int b) const { return cu_k ? cu_k[b + 1] - cu_k[b] : lk; }
  __device__ int q_blocks(int b) const { return (q(b) + block - 1) / block; }
  __device__ int k_blocks(int b) const { return (k(b) + block - 1) / block; }
};

// The q and k tensors of a selection call: data and element strides (batch stride 0 for varlen, whose token
// indices are absolute).
struct QkTensors {
  const void* q;
  const void* k;
  std::int64_t q_batch, q_token, q_head, k_batch, k_token, k_head;
};

}  // namespace sparsefill::cuda::select
