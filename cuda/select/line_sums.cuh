// MInference's line sums on the GPU (algorithms.md §4.4; CPU: src/select/minference_selector.cpp): the
// probabilities of the last `rows` queries' causal attention (statistics from last_rows.cuh's pass 0) summed per
// column j (vertical) and per diagonal offset o, over p(i, i + shift - o) (slash), in row order as the CPU does.
//
// A CTA sums 64 lines of one (sequence, query head). The keys they meet (64 columns, or up to rows + 63 keys
// for 64 diagonals) are taken 32 at a time: the logits of all rows x those keys are fp64 mma tiles (4 warps:
// 2 groups of 32 rows x 2 halves of the 32 keys; bf16/fp16 inputs are exact fp64 operands), turned into
// probabilities in shared memory; then one thread per line adds its probabilities over the rows.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/dynamic_shared.cuh"
#include "select/element_convert.cuh"
#include "select/last_rows.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kLinesPerCta = 64;      // columns or offsets summed per CTA
inline constexpr int kMaxLastQueries = 64;   // rows of the estimate (2 mma row groups of 32)
inline constexpr int kLineThreads = 128;     // 4 warps
inline constexpr int kLineKeys = kLinesPerCta + kMaxLastQueries;  // the most keys a CTA's lines meet
inline constexpr int kForcedColumns = 30, kForcedDiagonals = 100;

struct LineParams {
  LastRowsParams rows;     // the last-rows attention (partial statistics from proxy_pass_kernel pass 0)
  double* vertical;   // [batch, heads_q, width]
  double* slash;      // [batch, heads_q, width]
  int vertical_size, slash_size;
  std::int32_t* column_min;  // [batch, heads_q, nk]: the lowest kept column of each block (INT32_MAX: none)
  std::int32_t* offsets;     // [batch, heads_q, width]: kept diagonal offsets, ascending
  std::int32_t* offset_count;  // [batch, heads_q]
  int nq, nk;                // of the longest sequence (the mask layout)
  std::int32_t* kv_num_blocks;
  std::int32_t* kv_indices;
};

// Shared memory of line_sums_kernel: the query rows, one key tile, the probabilities of every key the CTA's
// lines meet ([key][row]) and the rows' statistics.
template <typename Element>
std::size_t line_smem_bytes(int d) {
  return sizeof(Element) * static_cast<std::size_t>(kMaxLastQueries) * (d + kProxyRowPad) +
         sizeof(float) * static_cast<std::size_t>(kProxyTile) * (d + kProxyKeyPad) +
         sizeof(double) * (static_cast<std::size_t>(kLineKeys) * kMaxLastQueries + 2 * kMaxLastQueries);
}

// Vertical (slash = 0) or slash (1) sums of (b, h) = (blockIdx.z, blockIdx.y) for lines blockIdx.x * 64 + t,
// t < 64, with kLineThreads threads.
template <typename Element>
__global__ void line_sums_kernel(const LineParams lp, int slash) {
  unsigned char* smem = dynamic_shared<unsigned char>();
  const LastRowsParams& p = lp.rows;
  const int h = blockIdx.y, b = blockIdx.z, d = p.d, hk = h / (p.heads_q / p.heads_kv);
  const int lq = p.lengths.q(b), lk = p.lengths.k(b), shift = lk - lq, rows = min(p.rows, lq);
  const int x0 = static_cast<int>(blockIdx.x) * kLinesPerCta, x = x0 + static_cast<int>(threadIdx.x);
  const bool owns_line = threadIdx.x < kLinesPerCta;
  const std::int64_t row_of_head = static_cast<std::int64_t>(b) * p.heads_q + h;
  double* out = (slash ? lp.slash : lp.vertical) + row_of_head * p.width;
  if (x0 >= lk) {
    if (owns_line && x < p.width) out[x] = 0.0;
    return;
  }
  const int q_stride = d + kProxyRowPad, k_stride = d + kProxyKeyPad;
  auto* qs = reinterpret_cast<Element*>(smem);  // [kMaxLastQueries][q_stride], rows past `rows` zero
  float* ks = reinterpret_cast<float*>(smem + sizeof(Element) * static_cast<std::size_t>(kMaxLastQueries) * q_stride);  // [kProxyTile][k_stride]
  double* probs = reinterpret_cast<double*>(ks + kProxyTile * k_stride);  // [kLineKeys][kMaxLastQueries]
  double* stats = probs + kLineKeys * kMaxLastQueries;                     // [kMaxLastQueries][2]
  load_last_queries<Element>(p, b, h, rows, q_stride, qs);
  for (int i = rows * q_stride + threadIdx.x; i < kMaxLastQueries * q_stride; i += blockDim.x) qs[i] = Element(0.0f);
  for (int r = threadIdx.x; r < rows; r += blockDim.x) merged_row_stats(p, b, h, r, lk, stats[2 * r], stats[2 * r + 1]);
  // Keys [k_lo, k_hi]: columns x0.., or for offsets the keys i + shift - o of every row i.
  const int k_hi = min(lk - 1, slash ? lq - 1 + shift - x0 : x0 + kLinesPerCta - 1);
  const int k_lo = max(0, slash ? lq - rows + shift - (x0 + kLinesPerCta - 1) : x0);
  const auto* k = static_cast<const Element*>(p.k) + b * p.k_batch + static_cast<std::int64_t>(p.lengths.k_start(b)) * p.k_token + hk * p.k_head;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, frag_mn = lane / 4, frag_k = lane % 4;
  const int row0 = 32 * (warp % 2), key0 = 16 * (warp / 2);  // this warp's rows and keys within a tile
  for (int t0 = k_lo; t0 <= k_hi; t0 += kProxyTile) {
    const int n = min(kProxyTile, k_hi + 1 - t0);
    __syncthreads();
    stage_key_tile(k, p.k_token, t0, n, d, k_stride, ks);
    __syncthreads();
    double acc[4][2][2];  // [row tile][key tile][element]
    tile_logits<Element, 2>(qs, q_stride, row0, ks, k_stride, key0, d, acc);
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) {
      const int r = row0 + 8 * mt + frag_mn, i = lq - rows + r;
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int key = key0 + 8 * nt + 2 * frag_k + e, j = t0 + key;
          if (r >= rows || key >= n) continue;
          const bool seen = j <= min(lk - 1, i + shift) && stats[2 * r] != -INFINITY;
          probs[(j - k_lo) * kMaxLastQueries + r] = seen ? exp(acc[mt][nt][e] * p.scale - stats[2 * r]) / stats[2 * r + 1] : 0.0;
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
    sum += probs[(j - k_lo) * kMaxLastQueries + r];
  }
  out[x] = x < (slash ? kForcedDiagonals : kForcedColumns) ? INFINITY : sum;
}

}  // namespace sparsefill::cuda::select
