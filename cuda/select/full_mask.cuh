// The mask of dense attention (every key block with a causally visible key, bottom-right; every block without
// causality), broadcast over heads: kv_num_blocks [batch, 1, nq], kv_indices [batch, 1, nq, nk] (nq, nk of the
// longest sequence). The same mask as full_block_mask() on the CPU, so "dense" runs through the block-sparse
// kernel (our dense path).
#pragma once
#include <cstdint>

#include "select/sequence_lengths.cuh"

namespace sparsefill::cuda::select {

// Grid (nq of the longest sequence, batch); rows past a shorter sequence's end (varlen) are empty.
__global__ void full_mask_kernel(Lengths lengths, int nk_max, int causal, std::int32_t* kv_num_blocks,
                                 std::int32_t* kv_indices) {
  const int u = blockIdx.x, b = blockIdx.y, nq_max = gridDim.x, block = lengths.block;
  const int lq = lengths.q(b), lk = lengths.k(b), nk = lengths.k_blocks(b);
  int count = 0;
  if (u < lengths.q_blocks(b)) {
    const int last_key = min((u + 1) * block, lq) - 1 + lk - lq;  // token-level, bottom-right
    count = causal ? (last_key < 0 ? 0 : min(last_key / block + 1, nk)) : nk;
  }
  const std::int64_t row = static_cast<std::int64_t>(b) * nq_max + u;
  for (int v = threadIdx.x; v < nk_max; v += blockDim.x) kv_indices[row * nk_max + v] = v < count ? v : 0;
  if (threadIdx.x == 0) kv_num_blocks[row] = count;
}

}  // namespace sparsefill::cuda::select
