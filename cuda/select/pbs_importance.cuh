// PBS-Attn's global-importance proxy on tensor cores (algorithms.md §3.3 step 1; CPU: pbs_importance in
// src/select/pbs_selector.cpp): s[j] = mean over the last B queries r of softmax_j(q_r . k_j / sqrt(d)) over the
// keys of complete segments, no causal mask, per query head.
//
// Precision: the spec's score precision, fp32 (algorithms.md §0.4): the bf16/fp16 products are exact, logits
// and sums are fp32 (the CPU's are fp64), so two keys whose importances lie within ~1e-6 of each other may rank
// in the other order than on the CPU; the mask is PBS's mask for the order the GPU ranked.
//
// Three launches over key chunks of kProxyChunk keys, a CTA per (chunk, head, sequence), 8 warps of 16 query rows
// (the last block, up to 128 rows). A warp keeps its rows' mma operands in registers for the whole chunk; keys
// are staged per CTA (cp.async, two stages of 128 keys, 64 for d > 128) and each warp multiplies them by its rows
// 64 keys (8 mma column tiles) at a time, so every staged key costs one shared load per 2 mma.
//  - pass 0 writes each chunk's row maximum and exp-sum (base 2);
//  - pbs_row_offsets_kernel merges them per row (chunk order) into o_r = m_r + log2(z_r * rows);
//  - pass 1 sums exp2(logit - o_r) over the rows, per key: within a warp by a reduce-scatter over the lanes of
//    a column (each lane ends with two keys), then over the warps in warp order.
#pragma once
#include <cstdint>

#include "common/dynamic_shared.cuh"
#include "select/last_rows.cuh"
#include "select/mma_tiles.cuh"
#include "select/pbs_kernels.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kImportanceWarps = 8;     // 16 query rows each
inline constexpr int kImportanceUnit = 64;     // keys multiplied per step of a warp: 8 mma column tiles
inline constexpr int kImportanceMaxDim = 256;  // 8 steps of 32 dims: 64 registers of query operands

// Keys staged per pipeline stage for head_dim d, 2 d bytes each (32 KB a stage at d = 128 and at d = 256).
constexpr int importance_stage_keys(int d) { return d <= 128 ? 128 : 64; }

// Shared memory: two key stages and the warps' column sums of a stage.
inline std::size_t importance_smem_bytes(int d, std::size_t element_bytes) {
  const std::size_t keys = static_cast<std::size_t>(importance_stage_keys(d));
  return element_bytes * 2 * keys * d + sizeof(float) * kImportanceWarps * keys;
}

// Sums v over the 8 lanes of a column (lanes of equal lane % 4) and scatters the result: a lane keeps entries
// 2g and 2g + 1 (g = lane / 4) of the summed v in v[0], v[1].
__device__ inline void reduce_scatter_over_rows(float (&v)[16], int lane) {
  exchange_halves<8, 16>(v, lane);
  exchange_halves<4, 8>(v, lane);
  exchange_halves<2, 4>(v, lane);
}

// Pass `pass` (0 or 1) over key chunk blockIdx.x of (b, h) = (blockIdx.z, blockIdx.y), 256 threads, head_dim
// 32 * kSteps; row r is query lq - rows + r. p.scale is the logit scale in log2 units (log2(e) / sqrt(d)).
template <typename Element, int kSteps>
__global__ void __launch_bounds__(kImportanceWarps * 32, kSteps <= 4 ? 2 : 1)
    pbs_importance_kernel(const LastRowsParams p, int pass) {
  constexpr int kD = 32 * kSteps, kGroups = kD / 8, kStageKeys = importance_stage_keys(kD);
  constexpr int kCopies = kStageKeys * kGroups / (kImportanceWarps * 32);  // 16-byte copies per thread and stage
  static_assert(kCopies * kImportanceWarps * 32 == kStageKeys * kGroups, "whole copies per thread");
  unsigned char* smem = dynamic_shared<unsigned char>();
  const int h = blockIdx.y, b = blockIdx.z, chunk = static_cast<int>(blockIdx.x);
  const int lq = p.lengths.q(b), keys = attended_keys(p, b);
  if (keys == 0) return;  // PBS's dense fallback: no permutation
  const int rows = min(p.rows, lq), j0 = chunk * kProxyChunk, j_end = min(j0 + kProxyChunk, keys);
  const std::int64_t head = static_cast<std::int64_t>(b) * p.heads_q + h;
  double* partial = p.partial + (head * p.chunks + chunk) * p.rows * 2;
  if (j0 >= keys) {
    for (int r = threadIdx.x; pass == 0 && r < rows; r += blockDim.x) {
      partial[r * 2] = -INFINITY;
      partial[r * 2 + 1] = 0.0;
    }
    return;
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, q4 = lane % 4;
  const std::size_t stage_elements = static_cast<std::size_t>(kStageKeys) * kD;
  Element* stages = reinterpret_cast<Element*>(smem);
  float* column_sums = reinterpret_cast<float*>(stages + 2 * stage_elements);  // [warp][kStageKeys]
  const auto* q = static_cast<const Element*>(p.q) + b * p.q_batch + static_cast<std::int64_t>(p.lengths.q_start(b)) * p.q_token + h * p.q_head;
  const auto* k = static_cast<const Element*>(p.k) + b * p.k_batch + static_cast<std::int64_t>(p.lengths.k_start(b)) * p.k_token +
                  (h / (p.heads_q / p.heads_kv)) * p.k_head;
  const int tiles = (j_end - j0 + kStageKeys - 1) / kStageKeys;
  auto issue = [&](int t) {
    Element* stage = stages + (t % 2) * stage_elements;
#pragma unroll
    for (int c = 0; c < kCopies; ++c) {
      const int i = threadIdx.x + c * kImportanceWarps * 32, n = i / kGroups, grp = i % kGroups;
      const int j = j0 + t * kStageKeys + n;
      async_copy16(stage + (n * kGroups + swizzled(n, grp, kGroups)) * 8, k + static_cast<std::int64_t>(j < j_end ? j : j0) * p.k_token + grp * 8,
                   j < j_end);
    }
    async_commit();
  };
  issue(0);

  // This lane's rows, warp * 16 + g and + 8, as mma operands for every 32-dim step (absent rows are zeros).
  const int r0 = warp * 16 + g;
  const bool row_here[2] = {r0 < rows, r0 + 8 < rows};
  RowFragment a[kSteps];
#pragma unroll
  for (int step = 0; step < kSteps; ++step)
    a[step] = {load8(q, static_cast<std::int64_t>(lq - rows + r0) * p.q_token + (step * 4 + q4) * 8, row_here[0]),
               load8(q, static_cast<std::int64_t>(lq - rows + r0 + 8) * p.q_token + (step * 4 + q4) * 8, row_here[1])};
  // Pass 0: running base-2 maximum and exp-sum of the two rows; pass 1: their offsets o_r (absent rows: +inf).
  float m[2] = {-INFINITY, -INFINITY}, z[2] = {0.f, 0.f};
  if (pass == 1)
    for (int i = 0; i < 2; ++i)
      m[i] = row_here[i] ? static_cast<float>(p.partial[importance_row_slot(p, head, r0 + 8 * i)]) : INFINITY;
  const float scale = static_cast<float>(p.scale);

  for (int t = 0; t < tiles; ++t) {
    next_stage(t, tiles, issue);
    const uint4* stage = reinterpret_cast<const uint4*>(stages + (t % 2) * stage_elements);
#pragma unroll 1
    for (int unit = 0; unit < kStageKeys / kImportanceUnit; ++unit) {
      const int key0 = j0 + t * kStageKeys + unit * kImportanceUnit;
      if (key0 >= j_end) break;
      float acc[kImportanceUnit / 8][4] = {};
#pragma unroll
      for (int step = 0; step < kSteps; ++step)
#pragma unroll
        for (int nt = 0; nt < kImportanceUnit / 8; ++nt) {
          const int n = unit * kImportanceUnit + nt * 8 + g;
          mma_step<Element>(acc[nt], a[step], stage[n * kGroups + swizzled(n, step * 4 + q4, kGroups)]);
        }
      if (key0 + kImportanceUnit > j_end)  // the chunk's last keys: columns past its end count for nothing
#pragma unroll
        for (int nt = 0; nt < kImportanceUnit / 8; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            if (key0 + nt * 8 + 2 * q4 + e % 2 >= j_end) acc[nt][e] = -INFINITY;
      if (pass == 0) {
        float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int nt = 0; nt < kImportanceUnit / 8; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) tile_max[e / 2] = fmaxf(tile_max[e / 2], acc[nt][e] * scale);
        raise_row_maxima(m, z, tile_max);
        const float shift[2] = {m[0] == -INFINITY ? 0.f : m[0], m[1] == -INFINITY ? 0.f : m[1]};
#pragma unroll
        for (int nt = 0; nt < kImportanceUnit / 8; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) z[e / 2] += exp2_flushed(acc[nt][e] * scale - shift[e / 2]);
      } else {
        float column[kImportanceUnit / 4];  // [nt][e]: this lane's two rows' probabilities of key nt * 8 + 2 q4 + e
#pragma unroll
        for (int nt = 0; nt < kImportanceUnit / 8; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e)
            column[nt * 2 + e] = exp2_flushed(acc[nt][e] * scale - m[0]) + exp2_flushed(acc[nt][2 + e] * scale - m[1]);
        reduce_scatter_over_rows(column, lane);
        *reinterpret_cast<float2*>(column_sums + warp * kStageKeys + unit * kImportanceUnit + 2 * lane) =
            make_float2(column[0], column[1]);
      }
    }
    if (pass == 1) {
      __syncthreads();
      for (int i = threadIdx.x; i < kStageKeys; i += blockDim.x) {
        const int key = j0 + t * kStageKeys + i;
        if (key >= j_end) break;
        float sum = 0.f;
        for (int w = 0; w < kImportanceWarps; ++w) sum += column_sums[w * kStageKeys + i];
        p.importance[head * p.width + key] = static_cast<double>(sum);
      }
    }
    __syncthreads();  // the stage (and the column sums) are consumed before they are written again
  }
  if (pass == 0) {
    for (int i = 0; i < 2; ++i) {
      merge_row_over_quad(m[i], z[i]);
      if (q4 == 0 && row_here[i]) {
        partial[(r0 + 8 * i) * 2] = m[i];
        partial[(r0 + 8 * i) * 2 + 1] = z[i];
      }
    }
  }
}

}  // namespace sparsefill::cuda::select
