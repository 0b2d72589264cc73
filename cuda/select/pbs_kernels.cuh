// PBS-Attn's segmented key permutation on the GPU (algorithms.md §3.3 step 2; CPU: src/select/pbs_selector.cpp).
// Inside each complete segment the keys are ranked by the proxy importance (pbs_importance.cuh), descending, ties by
// the lower index (the CPU's stable sort): one thread per key counts the keys ranked before it.
#pragma once
#include <cstdint>

#include "select/last_rows.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kMaxSegment = 1024;  // tokens per segment the rank kernel takes (one thread each)

// Positions [g S, (g + 1) S) of (b, h)'s key order, g = blockIdx.x, one thread per position: a complete
// segment of a sequence longer than S is ranked by importance; anything else keeps the identity (zeros past
// the sequence's end).
__global__ void segment_rank_kernel(const LastRowsParams p) {
  __shared__ double key[kMaxSegment];
  const int g = blockIdx.x, h = blockIdx.y, b = blockIdx.z, i = threadIdx.x, S = p.segment;
  const int L = p.lengths.q(b), complete = (L / S) * S, pos = g * S + i;
  const std::int64_t row = static_cast<std::int64_t>(b) * p.heads_q + h;
  std::int32_t* order = p.key_order + row * p.width;
  const bool ranked = L > S && (g + 1) * S <= complete;
  if (!ranked) {
    if (pos < p.width) order[pos] = pos < L ? pos : 0;
    return;
  }
  key[i] = p.importance[row * p.width + pos];
  __syncthreads();
  int rank = 0;
  for (int j = 0; j < S; ++j) rank += key[j] > key[i] || (key[j] == key[i] && j < i);
  order[g * S + rank] = pos;
}

}  // namespace sparsefill::cuda::select
