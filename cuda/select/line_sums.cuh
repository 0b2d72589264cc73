// Line sums of the last rows' attention on the GPU, for MInference (algorithms.md §4.4; CPU:
// src/select/minference_selector.cpp) and FlexPrefill (§4.3; src/select/flexprefill_selector.cpp): the
// probabilities of the last `rows` queries' causal attention (statistics from last_rows.cuh's pass 0), each
// divided by `term_divisor` (FlexPrefill: the block, as its reference averages over the rows), summed per
// column j (vertical) and per diagonal offset o, over p(i, i + shift - o) (slash), in row order as the CPU does.
// The rows' statistics are merged once per head first (merge_row_stats_kernel).
//
// A CTA sums kLines = 128 lines of one (sequence, query head). The keys they meet (the columns, or up to
// rows + kLines - 1 keys for diagonals) are taken 32 at a time: the logits of all rows x those keys are fp64 mma
// tiles (4 warps: kRows / 32 groups of 32 rows, each over a share of the 32 keys; bf16/fp16 inputs are exact
// fp64 operands); the (row, key) pairs on the CTA's lines become probabilities in shared memory, by line; then
// one thread per line adds its probabilities over the rows.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/dynamic_shared.cuh"
#include "select/element_convert.cuh"
#include "select/last_rows.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kMaxLastQueries = 128;  // rows of the estimate (4 mma row groups of 32)
inline constexpr int kLineThreads = 128;     // 4 warps

inline constexpr int kLinesPerCta = kLineThreads;  // one line per thread

// The row capacity (64 or 128) that holds `rows` rows.
inline int line_rows_capacity(int rows) { return rows <= 64 ? 64 : 128; }

struct LineParams {
  LastRowsParams rows;     // the last-rows attention (statistics: last_rows_stats_kernel, then merged)
  double* vertical;   // [batch, heads_q, width]
  double* slash;      // [batch, heads_q, width]
  int vertical_size, slash_size;
  int forced_columns, forced_diagonals;  // lines set to +inf (MInference: 30 and 100; FlexPrefill: none)
  double term_divisor;                   // each probability is divided by it before the sum (1: none)
  std::int32_t* column_min;  // [batch, heads_q, nk]: the lowest kept column of each block (INT32_MAX: none)
  std::int32_t* offsets;     // [batch, heads_q, width]: kept diagonal offsets, ascending
  std::int32_t* offset_count;  // [batch, heads_q]
  int nq, nk;                // of the longest sequence (the mask layout)
  std::int32_t* kv_num_blocks;
  std::int32_t* kv_indices;
};

// Merges each last row's chunk statistics (last_rows_stats_kernel) into its chunk-0 slot, so that the line
// sums' CTAs, thousands per head, read two values a row instead of every chunk's. One thread per row of
// (b, h) = (blockIdx.z, blockIdx.y); the thread that reads a row's slots is the only one to write them. Static:
// two selectors' translation units include this header.
static __global__ void merge_row_stats_kernel(const LastRowsParams p) {
  const int h = blockIdx.y, b = blockIdx.z, rows = min(p.rows, p.lengths.q(b));
  double* slots = p.partial + (static_cast<std::int64_t>(b) * p.heads_q + h) * p.chunks * p.rows * 2;
  for (int r = threadIdx.x; r < rows; r += blockDim.x) {
    double m, z;
    merged_row_stats(p, b, h, r, attended_keys(p, b), false, m, z);
    slots[2 * r] = m;
    slots[2 * r + 1] = z;
  }
}

// Shared memory of line_sums_kernel<Element, kRows>: the query rows, one key tile, the probabilities the CTA's
// lines add ([line][row]) and the rows' statistics.
template <typename Element, int kRows>
std::size_t line_smem_bytes(int d) {
  return sizeof(Element) * static_cast<std::size_t>(kRows) * (d + kProxyRowPad) +
         sizeof(float) * static_cast<std::size_t>(kProxyTile) * (d + kProxyKeyPad) +
         sizeof(double) * (static_cast<std::size_t>(kLinesPerCta) * kRows + 2 * kRows);
}

// Vertical (slash = 0) or slash (1) sums of (b, h) = (blockIdx.z, blockIdx.y) for lines blockIdx.x * kLines + t,
// t < kLines, with kLineThreads threads; at most kRows rows.
template <typename Element, int kRows>
__global__ void line_sums_kernel(const LineParams lp, int slash) {
  static_assert(kRows == 64 || kRows == 128, "two or four row groups of 32");
  constexpr int kLines = kLinesPerCta, kGroups = kRows / 32, kKeyShares = 4 / kGroups;
  constexpr int kKeyTiles = 4 / kKeyShares;  // 8-key mma column tiles per warp
  unsigned char* smem = dynamic_shared<unsigned char>();
  const LastRowsParams& p = lp.rows;
  const int h = blockIdx.y, b = blockIdx.z, d = p.d, hk = h / (p.heads_q / p.heads_kv);
  const int lq = p.lengths.q(b), lk = p.lengths.k(b), shift = lk - lq, rows = min(p.rows, lq);
  const int x0 = static_cast<int>(blockIdx.x) * kLines, x = x0 + static_cast<int>(threadIdx.x);
  const bool owns_line = threadIdx.x < kLines;
  const std::int64_t row_of_head = static_cast<std::int64_t>(b) * p.heads_q + h;
  double* out = (slash ? lp.slash : lp.vertical) + row_of_head * p.width;
  if (x0 >= lk) {
    if (owns_line && x < p.width) out[x] = 0.0;
    return;
  }
  const int q_stride = d + kProxyRowPad, k_stride = d + kProxyKeyPad;
  auto* qs = reinterpret_cast<Element*>(smem);  // [kRows][q_stride], rows past `rows` zero
  float* ks = reinterpret_cast<float*>(smem + sizeof(Element) * static_cast<std::size_t>(kRows) * q_stride);  // [kProxyTile][k_stride]
  double* probs = reinterpret_cast<double*>(ks + kProxyTile * k_stride);  // [kLines][kRows]
  double* stats = probs + kLines * kRows;                                 // [kRows][2]
  load_last_queries<Element>(p, b, h, rows, kRows, q_stride, qs);
  const double* merged = p.partial + row_of_head * p.chunks * p.rows * 2;  // merge_row_stats_kernel's slots
  for (int r = threadIdx.x; r < 2 * rows; r += blockDim.x) stats[r] = merged[r];
  // Keys [k_lo, k_hi]: columns x0.., or for offsets the keys i + shift - o of every row i.
  const int k_hi = min(lk - 1, slash ? lq - 1 + shift - x0 : x0 + kLines - 1);
  const int k_lo = max(0, slash ? lq - rows + shift - (x0 + kLines - 1) : x0);
  const auto* k = static_cast<const Element*>(p.k) + b * p.k_batch + static_cast<std::int64_t>(p.lengths.k_start(b)) * p.k_token + hk * p.k_head;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, frag_mn = lane / 4, frag_k = lane % 4;
  const int row0 = 32 * (warp % kGroups), key0 = 8 * kKeyTiles * (warp / kGroups);  // this warp's rows and keys
  for (int t0 = k_lo; t0 <= k_hi; t0 += kProxyTile) {
    const int n = min(kProxyTile, k_hi + 1 - t0);
    __syncthreads();
    stage_key_tile(k, p.k_token, t0, n, d, k_stride, ks);
    __syncthreads();
    double acc[4][kKeyTiles][2];  // [row tile][key tile][element]
    tile_logits<Element, kKeyTiles>(qs, q_stride, row0, ks, k_stride, key0, d, acc);
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) {
      const int r = row0 + 8 * mt + frag_mn, i = lq - rows + r;
#pragma unroll
      for (int nt = 0; nt < kKeyTiles; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int key = key0 + 8 * nt + 2 * frag_k + e, j = t0 + key;
          const int line = (slash ? i + shift - j : j) - x0;  // the CTA's line this pair adds to, if any
          if (r >= rows || key >= n || line < 0 || line >= kLines) continue;
          const bool seen = j <= min(lk - 1, i + shift) && stats[2 * r] != -INFINITY;
          probs[line * kRows + r] =
              seen ? exp(acc[mt][nt][e] * p.scale - stats[2 * r]) / stats[2 * r + 1] / lp.term_divisor : 0.0;
        }
    }
  }
  __syncthreads();
  if (!owns_line) return;
  if (x >= lk) {
    if (x < p.width) out[x] = 0.0;
    return;
  }
  double sum = 0.0;
  for (int r = 0; r < rows; ++r) {
    const int i = lq - rows + r, j = slash ? i + shift - x : x;
    if (j < 0 || j > min(lk - 1, i + shift) || stats[2 * r] == -INFINITY) continue;
    sum += probs[(x - x0) * kRows + r];
  }
  out[x] = x < (slash ? lp.forced_diagonals : lp.forced_columns) ? INFINITY : sum;
}

}  // namespace sparsefill::cuda::select
