// The stride selectors' kernel: each warp scores one (sequence, query head, query block) row, then applies the
// rule (see stride_scoring.cuh for the scoring, stride_rules.cuh for the rules).
#pragma once
#include "common/dynamic_shared.cuh"
#include "select/stride_rules.cuh"
#include "select/stride_scoring.cuh"

namespace sparsefill::cuda::select {

// Shared memory: one block row (nk doubles) and the cut's scratch per warp.
inline std::size_t stride_smem_bytes(int nk) {
  return (sizeof(double) * static_cast<std::size_t>(nk) + sizeof(CutScratch)) * kStrideWarps;
}

// Grid (ceil(nq * group / kStrideWarps), the launch's KV slots). Warp w of CTA x takes item x kStrideWarps + w =
// u * group + (query head within the KV head's group).
template <typename Element, int kItems, bool kRR>
__global__ void __launch_bounds__(kStrideWarps * 32, kItems > 32 ? 2 : 4) stride_select_kernel(const StrideParams p) {
  unsigned char* smem = dynamic_shared<unsigned char>();
  const int group = p.heads_q / p.heads_kv, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int item = static_cast<int>(blockIdx.x) * kStrideWarps + warp;
  if (item >= p.nq * group) return;
  double* block_row = reinterpret_cast<double*>(smem) + static_cast<std::size_t>(warp) * p.nk;
  CutScratch& scratch = reinterpret_cast<CutScratch*>(smem + sizeof(double) * p.nk * kStrideWarps)[warp];
  StrideTile t{};
  t.slot = p.slot_begin + static_cast<int>(blockIdx.y);
  t.b = t.slot / p.heads_kv;
  t.g = t.slot % p.heads_kv;
  t.h = t.g * group + item % group;
  t.u = item / group;
  t.lq = p.lengths.q(t.b);
  t.lk = p.lengths.k(t.b);
  t.nq_b = p.lengths.q_blocks(t.b);
  t.nk_b = p.lengths.k_blocks(t.b);
  t.key_strides = (t.lk + p.stride - 1) / p.stride;
  t.rows = p.lengths.block / p.stride;
  t.offset = p.mirrored ? p.stride - 1 - t.h % p.stride : t.h % p.stride;
  t.q_base = t.b * p.q_batch + static_cast<std::int64_t>(p.lengths.q_start(t.b)) * p.q_token + t.h * p.q_head;
  t.k_base = t.b * p.k_batch + static_cast<std::int64_t>(p.lengths.k_start(t.b)) * p.k_token + t.g * p.k_head;
  t.dims = kRR ? p.d : p.stride * p.d;
  const std::int64_t mask_row = (static_cast<std::int64_t>(t.b) * p.heads_q + t.h) * p.nq + t.u;
  if (t.u >= t.nq_b) {  // a row past this sequence's end (varlen) stays empty
    write_mask_row<kItems>(0ull, p.nk, p.kv_indices + mask_row * p.nk, p.kv_num_blocks + mask_row);
    return;
  }
  for (int v = lane; v < t.nk_b; v += 32) block_row[v] = 0.0;
  __syncwarp();
  // Logits in log2 units (scale 1 / (S sqrt(d)) times log2(e)), so each probability is one exp2.
  const float scale = 1.4426950408889634f / (static_cast<float>(p.stride) * sqrtf(static_cast<float>(p.d)));
  const int g = lane / 4, q4 = lane % 4;

  for (int r0 = 0; r0 < t.rows; r0 += 16) {
    // This lane's two rows (g and g + 8 of the tile): the last key stride each may see, -1 for none.
    const int limit[2] = {r0 + g < t.rows ? t.row_limit(p, r0 + g) : -1,
                          r0 + g + 8 < t.rows ? t.row_limit(p, r0 + g + 8) : -1};
    int tile_limit = max(limit[0], limit[1]);
    for (int offset = 16; offset > 0; offset /= 2) tile_limit = max(tile_limit, __shfl_xor_sync(0xffffffffu, tile_limit, offset));
    RowFragment held[kMaxRegisterSteps];
    if constexpr (kRR) {
#pragma unroll
      for (int step = 0; step < kMaxRegisterSteps; ++step)
        if (step * 32 < t.dims)
          held[step] = {t.sampled_query_dims(p, r0 + g, step * 32 + 8 * q4),
                        t.sampled_query_dims(p, r0 + g + 8, step * 32 + 8 * q4)};
    }
    auto visible = [&](int col0, int n, int e) { return col0 + 8 * n + 2 * q4 + (e % 2) <= limit[e / 2]; };

    // Pass 1: each row's maximum and exp-sum over its visible columns (online, then over the row's 4 lanes).
    float m[2] = {-INFINITY, -INFINITY}, z[2] = {0.f, 0.f};
#pragma unroll 2
    for (int col0 = 0; col0 <= tile_limit; col0 += 16) {
      float acc[2][4];
      tile_logits<Element, kRR>(p, t, r0, col0, held, acc);
      float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int n = 0; n < 2; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (visible(col0, n, e)) tile_max[e / 2] = fmaxf(tile_max[e / 2], acc[n][e] * scale);
      raise_row_maxima(m, z, tile_max);
#pragma unroll
      for (int n = 0; n < 2; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (visible(col0, n, e)) z[e / 2] += exp2f(acc[n][e] * scale - m[e / 2]);
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) merge_row_over_quad(m[i], z[i]);

    // Pass 2: probabilities summed over the tile's rows and into their blocks, added by lane 0 in column
    // order. With R >= 16 a 16-column group lies in one block.
    float inv_z[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) inv_z[i] = 1.f / z[i];
#pragma unroll 2
    for (int col0 = 0; col0 <= tile_limit; col0 += 16) {
      float acc[2][4];
      tile_logits<Element, kRR>(p, t, r0, col0, held, acc);
      float column[2][2] = {{0.f, 0.f}, {0.f, 0.f}};  // [n][e % 2], this lane's two rows
#pragma unroll
      for (int n = 0; n < 2; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (visible(col0, n, e)) column[n][e % 2] += exp2f(acc[n][e] * scale - m[e / 2]) * inv_z[e / 2];
      if (t.rows >= 16) {
        float all = column[0][0] + column[0][1] + column[1][0] + column[1][1];
        for (int offset = 16; offset > 0; offset /= 2) all += __shfl_xor_sync(0xffffffffu, all, offset);
        if (lane == 0 && col0 / t.rows < t.nk_b) block_row[col0 / t.rows] += static_cast<double>(all);
        continue;
      }
#pragma unroll
      for (int n = 0; n < 2; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e)
          for (int offset = 4; offset < 32; offset *= 2) column[n][e] += __shfl_xor_sync(0xffffffffu, column[n][e], offset);
      double sum = 0.0;
      int current = col0 / t.rows;
#pragma unroll
      for (int c = 0; c < 16; ++c) {  // lanes 0..3 hold columns 8 n + 2 lane + e
        const float value = __shfl_sync(0xffffffffu, column[c / 8][c % 2], (c % 8) / 2);
        const int v = (col0 + c) / t.rows;
        if (v != current) {
          if (lane == 0 && current < t.nk_b) block_row[current] += sum;
          sum = 0.0;
          current = v;
        }
        sum += static_cast<double>(value);
      }
      if (lane == 0 && current < t.nk_b) block_row[current] += sum;
    }
  }
  __syncwarp();
  const unsigned long long kept = stride_rule<kItems>(p, block_row, t.u, t.nq_b, t.nk_b, t.lk, scratch);
  write_mask_row<kItems>(kept, p.nk, p.kv_indices + mask_row * p.nk, p.kv_num_blocks + mask_row);
}

}  // namespace sparsefill::cuda::select
