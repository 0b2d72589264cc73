// MInference vertical-slash on the GPU (algorithms.md §4.4; the CPU form is src/select/minference_selector.cpp).
//
// The last `last_q` queries' causal attention (scale 1/sqrt(128), hard-coded in the reference) is estimated with
// the shared last-rows statistics pass (last_rows.cuh); line_sums.cuh sums its probabilities per column
// (vertical) and per diagonal (slash). The first 30 columns and 100 diagonals are forced (+inf), the top
// vertical_size columns and slash_size diagonals kept (ties by the lower index), and the kept lines rasterised
// to blocks: a block row keeps a block holding a kept column at or before its last key, or a kept diagonal's
// span over its queries.
#pragma once
#include <cstdint>

#include "select/line_sums.cuh"
#include "select/line_top_k.cuh"
#include "select/ranked_cut.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kForcedColumns = 30, kForcedDiagonals = 100;  // the lines MInference always keeps
inline constexpr int kMaxRasterBlocks = 64 * kKeyChunk;  // key blocks per mask row the raster kernel holds

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
