// The mask of dense attention (every key block with a causally visible key, bottom-right; every block without causality),
// broadcast over heads: kv_num_blocks [batch, 1, nq], kv_indices [batch, 1, nq, nk]. The same mask as
// full_block_mask() on the CPU, so "dense" runs through the block-sparse kernel (our dense path).
#pragma once
#include <cstdint>

namespace sparsefill::cuda::select {

__global__ void full_mask_kernel(int lq, int lk, int block, int causal, std::int32_t* kv_num_blocks,
                                 std::int32_t* kv_indices) {
  const int u = blockIdx.x, b = blockIdx.y, nq = gridDim.x, nk = (lk + block - 1) / block;
  const int last_key = min((u + 1) * block, lq) - 1 + lk - lq;  // token-level, bottom-right
  const int count = causal ? (last_key < 0 ? 0 : min(last_key / block + 1, nk)) : nk;
  const std::int64_t row = static_cast<std::int64_t>(b) * nq + u;
  for (int v = threadIdx.x; v < nk; v += blockDim.x) kv_indices[row * nk + v] = v < count ? v : 0;
  if (threadIdx.x == 0) kv_num_blocks[row] = count;
}

}  // namespace sparsefill::cuda::select
