// PBS-Attn's scalar kernels on the GPU (CPU: src/select/pbs_selector.cpp): the merge of the proxy's row
// statistics between its two tensor-core passes (pbs_importance.cuh), and the segmented key permutation
// (algorithms.md §3.3 step 2): inside each complete segment the keys are ranked by the proxy importance,
// descending, ties by the lower index (the CPU's stable sort): one thread per key counts the keys ranked before it.
#pragma once
#include <cstdint>

#include "select/last_rows.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kMaxSegment = 1024;  // tokens per segment the rank kernel takes (one thread each)

// Where row r of query head `head` (b * heads_q + h) keeps its merged offset: chunk 0's maximum slot of p.partial.
__device__ inline std::int64_t importance_row_slot(const LastRowsParams& p, std::int64_t head, int r) {
  return head * p.chunks * p.rows * 2 + r * 2;
}

// Merges each last row's chunk statistics from the proxy's pass 0 (base 2) into o_r = m_r + log2(z_r * rows), the
// log2 of the row's softmax denominator times the rows, stored in its importance_row_slot for pass 1. One thread
// per row of (b, h) = (blockIdx.z, blockIdx.y); the thread that reads a row's slots is the only one to write them.
__global__ void pbs_row_offsets_kernel(const LastRowsParams p) {
  const int h = blockIdx.y, b = blockIdx.z, rows = min(p.rows, p.lengths.q(b)), keys = attended_keys(p, b);
  if (keys == 0) return;  // no proxy for this sequence
  const std::int64_t head = static_cast<std::int64_t>(b) * p.heads_q + h;
  for (int r = threadIdx.x; r < rows; r += blockDim.x) {
    double m, z;
    merged_row_stats(p, b, h, r, keys, true, m, z);
    p.partial[importance_row_slot(p, head, r)] = m + log2(z * rows);
  }
}

// Positions [g S, (g + 1) S) of (b, h)'s key order, g = blockIdx.x, one thread per position: a complete
// segment of a sequence longer than S is ranked by importance; anything else keeps the identity (zeros past
// the sequence's end).
__global__ void segment_rank_kernel(const LastRowsParams p) {
  __shared__ float key[kMaxSegment];
  const int g = blockIdx.x, h = blockIdx.y, b = blockIdx.z, i = threadIdx.x, S = p.segment;
  const int L = p.lengths.q(b), complete = (L / S) * S, pos = g * S + i;
  const std::int64_t row = static_cast<std::int64_t>(b) * p.heads_q + h;
  std::int32_t* order = p.key_order + row * p.width;
  const bool ranked = L > S && (g + 1) * S <= complete;
  if (!ranked) {
    if (pos < p.width) order[pos] = pos < L ? pos : 0;
    return;
  }
  // The proxy's importances are fp32 sums (pbs_importance.cuh) held as doubles, so their floats rank them
  // exactly, on the fp32 pipe.
  key[i] = static_cast<float>(p.importance[row * p.width + pos]);
  __syncthreads();
  const float mine = key[i];
  // Keys before this one rank ahead when at least as important (ties by index), keys after it when more.
  int rank = 0;
#pragma unroll 8
  for (int j = 0; j < i; ++j) rank += key[j] >= mine;
#pragma unroll 8
  for (int j = i + 1; j < S; ++j) rank += key[j] > mine;
  order[g * S + rank] = pos;
}

}  // namespace sparsefill::cuda::select
