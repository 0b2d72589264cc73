// MInference vertical-slash on the GPU (algorithms.md §4.4; the CPU form is src/select/minference_selector.cpp).
//
// The last `last_q` queries' causal attention (scale 1/sqrt(128), hard-coded in the reference) is estimated with
// the shared last-rows statistics pass (last_rows.cuh); line_sums.cuh sums its probabilities per column
// (vertical) and per diagonal (slash). The first 30 columns and 100 diagonals are forced (+inf), the top
// vertical_size columns and slash_size diagonals kept (ties by the lower index), and the kept lines rasterised
// to blocks: a block row keeps a block holding a kept column at or before its last key, or a kept diagonal's
// span over its queries.
#pragma once
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cstdint>

#include "select/line_sums.cuh"
#include "select/ranked_cut.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kTopKThreads = 1024;
inline constexpr int kForcedColumns = 30, kForcedDiagonals = 100;  // the lines MInference always keeps
inline constexpr int kMaxRasterBlocks = 64 * kKeyChunk;  // key blocks per mask row the raster kernel holds

// Top-k of a line array (vertical: k = clamp(vertical_size, 30, lk); slash: clamp(slash_size, 50, lk)), ties by
// the lower index, without sorting: a binary search over the values' bit patterns finds the k-th largest, then
// the tied entries are taken in index order. Vertical writes each block's lowest kept column; slash writes the
// kept offsets ascending. One CTA per (b, h) = (blockIdx.z, blockIdx.y).
__global__ void __launch_bounds__(kTopKThreads) line_top_k_kernel(const LineParams lp, int slash) {
  using Reduce = cub::BlockReduce<int, kTopKThreads>;
  using Scan = cub::BlockScan<int, kTopKThreads>;
  __shared__ union {
    typename Reduce::TempStorage reduce;
    typename Scan::TempStorage scan;
  } temp;
  __shared__ int broadcast;
  const LastRowsParams& p = lp.rows;
  const int h = blockIdx.y, b = blockIdx.z, lk = p.lengths.k(b), block = p.lengths.block;
  const std::int64_t row = static_cast<std::int64_t>(b) * p.heads_q + h;
  const double* values = (slash ? lp.slash : lp.vertical) + row * p.width;
  const int wanted = slash ? lp.slash_size : lp.vertical_size, floor = slash ? 50 : 30;
  const int k = min(max(wanted, floor), lk);
  const int per = (lk + kTopKThreads - 1) / kTopKThreads, begin = threadIdx.x * per, end = min(begin + per, lk);
  auto key_of = [&](int x) { return static_cast<unsigned long long>(__double_as_longlong(values[x])); };
  auto count_above = [&](unsigned long long key) {
    int n = 0;
    for (int x = begin; x < end; ++x) n += key_of(x) > key;
    n = Reduce(temp.reduce).Sum(n);
    if (threadIdx.x == 0) broadcast = n;
    __syncthreads();
    n = broadcast;
    __syncthreads();
    return n;
  };
  // The smallest pattern K with fewer than k values above it is the k-th largest value.
  unsigned long long lo = 0, hi = 0x7ff0000000000000ull;  // +inf, the largest value present
  while (lo < hi) {
    const unsigned long long mid = lo + (hi - lo) / 2;
    if (count_above(mid) < k) hi = mid; else lo = mid + 1;
  }
  const int need = k - count_above(lo);  // entries equal to the boundary, taken by index
  int tied = 0;
  for (int x = begin; x < end; ++x) tied += key_of(x) == lo;
  int tied_before = 0;
  Scan(temp.scan).ExclusiveSum(tied, tied_before);
  __syncthreads();
  int kept_here = 0;
  for (int x = begin, t = tied_before; x < end; ++x) {
    const bool at = key_of(x) == lo;
    kept_here += key_of(x) > lo || (at && t < need);
    t += at;
  }
  if (!slash) {
    std::int32_t* column_min = lp.column_min + row * lp.nk;
    for (int v = threadIdx.x; v < lp.nk; v += blockDim.x) column_min[v] = INT32_MAX;
    __syncthreads();
    for (int x = begin, t = tied_before; x < end; ++x) {
      const bool at = key_of(x) == lo;
      if (key_of(x) > lo || (at && t < need)) atomicMin(&column_min[x / block], x);
      t += at;
    }
    return;
  }
  int position = 0;
  Scan(temp.scan).ExclusiveSum(kept_here, position);
  std::int32_t* offsets = lp.offsets + row * p.width;
  for (int x = begin, t = tied_before; x < end; ++x) {
    const bool at = key_of(x) == lo;
    if (key_of(x) > lo || (at && t < need)) offsets[position++] = x;
    t += at;
  }
  if (threadIdx.x == kTopKThreads - 1) lp.offset_count[row] = position;
}

// Mask row u of (b, h) = (blockIdx.z, blockIdx.y): the blocks of kept columns at or before its last key and the
// spans of kept diagonals over its queries. One warp.
__global__ void line_raster_kernel(const LineParams lp) {
  __shared__ unsigned char keep[kMaxRasterBlocks];
  const LastRowsParams& p = lp.rows;
  const int u = blockIdx.x, h = blockIdx.y, b = blockIdx.z, lane = threadIdx.x, block = p.lengths.block;
  const int lq = p.lengths.q(b), lk = p.lengths.k(b), shift = lk - lq, nk = p.lengths.k_blocks(b);
  const std::int64_t row = static_cast<std::int64_t>(b) * p.heads_q + h, mask_row = row * lp.nq + u;
  unsigned long long kept = 0;
  if (u < p.lengths.q_blocks(b)) {
    for (int v = lane; v < nk; v += 32) keep[v] = 0;
    __syncwarp();
    const int first = u * block + shift, last = min((u + 1) * block, lq) - 1 + shift;
    const std::int32_t* offsets = lp.offsets + row * p.width;
    for (int i = lane; i < lp.offset_count[row]; i += 32) {
      const int o = offsets[i], from = max(0, first - o), to = min(lk - 1, last - o);
      for (int v = from / block; to >= from && v <= to / block; ++v) keep[v] = 1;
    }
    __syncwarp();
    const std::int32_t* column_min = lp.column_min + row * lp.nk;
    for (int c = 0; c < 64 && c * 32 < nk; ++c) {
      const int v = c * 32 + lane;
      if (v < nk && (keep[v] || column_min[v] <= last)) kept |= 1ull << c;
    }
  }
  write_mask_row<64>(kept, lp.nk, lp.kv_indices + mask_row * lp.nk, lp.kv_num_blocks + mask_row);
}

}  // namespace sparsefill::cuda::select
