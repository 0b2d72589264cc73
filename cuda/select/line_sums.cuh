// Line sums of the last rows' attention on the GPU, for MInference (algorithms.md §4.4; CPU:
// src/select/minference_selector.cpp) and FlexPrefill (§4.3; src/select/flexprefill_selector.cpp): the
// probabilities of the last `rows` queries' causal attention (statistics from last_rows.cuh's pass 0), each
// divided by `term_divisor` (FlexPrefill: the block, as its reference averages over the rows), summed per
// column j (vertical) and per diagonal offset o, over p(i, i + shift - o) (slash), in row order as the CPU
// does. The rows' statistics are merged once per head first (merge_row_stats_kernel).
//
// A CTA sums kLines = 128 lines of one (sequence, query head), one line a thread. It takes the rows in groups
// of 32 (kLineGroupRows), in row order: for a group, the keys its pairs on the CTA's lines meet (the columns,
// or up to 32 + kLines - 1 keys for diagonals) are staged 32 at a time and multiplied with the group's rows
// as mma tiles (each of the 4 warps takes 8 of the 32 keys against the 32 rows; fp32 logits and
// fp32-precision exponentials, as last_rows.cuh's pass, so the sums agree with the CPU's to ~1e-6,
// relative); the pairs on the CTA's lines become probabilities (fp64) in shared memory, by line; then each
// thread adds its line's 32 probabilities to its running sum. Only a group's probabilities are held, so
// several CTAs share an SM.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/dynamic_shared.cuh"
#include "select/fp64_exp.cuh"
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

inline constexpr int kLineGroupRows = 32;  // rows a CTA multiplies and sums at a time
// Doubles a line's probabilities take: the sums' reads, a line a lane, are free of bank conflicts.
inline constexpr int kLineProbStride = kLineGroupRows + 1;

// Shared memory of line_sums_kernel<Element, kRows>: one group's query rows and one key tile (input dtype,
// rows of d + kProxyRowPad elements), the group's probabilities by line, and the rows' statistics.
template <typename Element, int kRows>
std::size_t line_smem_bytes(int d) {
  return sizeof(Element) * static_cast<std::size_t>(kLineGroupRows + kProxyTile) * (d + kProxyRowPad) +
         sizeof(double) * (static_cast<std::size_t>(kLinesPerCta) * kLineProbStride + 2 * kRows);
}

// Vertical (slash = 0) or slash (1) sums of (b, h) = (blockIdx.z, blockIdx.y) for lines blockIdx.x * kLines + t,
// t < kLines, with kLineThreads threads; at most kRows rows.
template <typename Element, int kRows>
__global__ void line_sums_kernel(const LineParams lp, int slash) {
  static_assert(kRows % kLineGroupRows == 0 && kLineThreads == 4 * 32, "whole row groups; 4 warps of 8 keys");
  constexpr int kLines = kLinesPerCta;
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
  const int stride = d + kProxyRowPad;
  auto* qs = reinterpret_cast<Element*>(smem);  // [kLineGroupRows][stride]: the group's rows, then zeros
  Element* ks = qs + kLineGroupRows * stride;   // [kProxyTile][stride]
  double* probs = reinterpret_cast<double*>(ks + kProxyTile * stride);     // [kLines][kLineProbStride]
  double* stats = probs + kLines * kLineProbStride;  // [kRows][2]: maximum, 1 / exp-sum / term_divisor
  const double* merged = p.partial + row_of_head * p.chunks * p.rows * 2;  // merge_row_stats_kernel's slots
  for (int r = threadIdx.x; r < rows; r += blockDim.x) {
    stats[2 * r] = merged[2 * r];
    stats[2 * r + 1] = 1.0 / merged[2 * r + 1] / lp.term_divisor;
  }
  const Element* q = head_queries<Element>(p, b, h);
  const Element* k = head_keys<Element>(p, b, hk);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, frag_mn = lane / 4, frag_k = lane % 4;
  // The key of row r (query lq - rows + r) on line x when the row adds a probability to the line, else -1.
  auto key_on_line = [&](int r, int line) {
    const int i = lq - rows + r, j = slash ? i + shift - line : line;
    return j >= 0 && j <= min(lk - 1, i + shift) && stats[2 * r] != -INFINITY ? j : -1;
  };
  double sum = 0.0;  // this thread's line, over the rows in order
  for (int r0 = 0; r0 < rows; r0 += kLineGroupRows) {
    const int group = min(kLineGroupRows, rows - r0), i_lo = lq - rows + r0, i_hi = i_lo + group - 1;
    __syncthreads();  // the previous group's rows and probabilities are consumed (and the statistics staged)
    stage_rows(q + static_cast<std::int64_t>(i_lo) * p.q_token, p.q_token, group, kLineGroupRows, d, qs,
               stride);
    // Keys [k_lo, k_hi]: those the group's rows meet on the CTA's lines.
    const int k_hi = min(lk - 1, slash ? i_hi + shift - x0 : min(x0 + kLines - 1, i_hi + shift));
    const int k_lo = max(0, slash ? i_lo + shift - (x0 + kLines - 1) : x0);
    for (int t0 = k_lo; t0 <= k_hi; t0 += kProxyTile) {
      const int n = min(kProxyTile, k_hi + 1 - t0);
      __syncthreads();  // the group's rows are staged; the previous key tile is consumed
      stage_rows(k + static_cast<std::int64_t>(t0) * p.k_token, p.k_token, n, kProxyTile, d, ks, stride);
      __syncthreads();
      float acc[4][1][2];  // [row tile][key tile][element]
      tile_logits<Element, 1>(qs, stride, 0, ks, stride, 8 * warp, d, acc);
#pragma unroll
      for (int mt = 0; mt < 4; ++mt) {
        const int r = r0 + 8 * mt + frag_mn, i = lq - rows + r;
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int key = 8 * warp + 2 * frag_k + e, j = t0 + key;
          const int line = (slash ? i + shift - j : j) - x0;  // the CTA's line this pair adds to, if any
          if (r >= rows || key >= n || line < 0 || line >= kLines || key_on_line(r, line + x0) < 0) continue;
          // The logit is at most the row's maximum. One multiply for the CPU's two divisions: within an ulp
          // of them when term_divisor is a power of two (FlexPrefill's block, MInference's 1).
          probs[line * kLineProbStride + (r - r0)] =
              exp_nonpositive_fp32(acc[mt][0][e] * p.scale - stats[2 * r]) * stats[2 * r + 1];
        }
      }
    }
    __syncthreads();
    if (owns_line && x < lk)
      for (int r = r0; r < r0 + group; ++r)
        if (key_on_line(r, x) >= 0) sum += probs[(x - x0) * kLineProbStride + (r - r0)];
  }
  if (!owns_line) return;
  if (x >= lk) {
    if (x < p.width) out[x] = 0.0;
    return;
  }
  out[x] = x < (slash ? lp.forced_diagonals : lp.forced_columns) ? INFINITY : sum;
}

}  // namespace sparsefill::cuda::select
