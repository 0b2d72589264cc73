// PBS-Attn's global-importance proxy on tensor cores (algorithms.md §3.3 step 1; CPU: pbs_importance in
// src/select/pbs_selector.cpp): s[j] = mean over the last B queries r of softmax_j(q_r . k_j / sqrt(d)) over the
// keys of complete segments, no causal mask, per query head.
//
// Precision: the spec's score precision, fp32 (algorithms.md §0.4): the bf16/fp16 products are exact, logits
// and sums are fp32 (the CPU's are fp64), so two keys whose importances lie within ~1e-6 of each other may rank
// in the other order than on the CPU; the mask is PBS's mask for the order the GPU ranked.
//
// Two passes over key chunks of kProxyChunk keys, a CTA per (chunk, head, sequence), 8 warps of 16 query rows
// (the last block, up to 128 rows, staged once in shared memory); keys are staged 32 at a time (cp.async, two
// stages) and multiplied by every warp's rows (mma.sync, mma_tiles.cuh). Pass 0 writes each chunk's row maximum
// and exp-sum (base 2); pass 1 merges them per row (chunk order) and sums each key's probabilities over the rows
// (within a warp by shuffles, then over the warps in warp order).
#pragma once
#include <cstdint>

#include "common/dynamic_shared.cuh"
#include "select/last_rows.cuh"
#include "select/mma_tiles.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kImportanceWarps = 8;   // 16 query rows each
inline constexpr int kImportanceKeys = 32;   // keys staged per step: 4 mma n-tiles
inline constexpr int kImportanceMaxDim = 256;  // 32 keys x 32 groups of 8 dims: 4 copies per thread

// Shared memory: the query rows, two key stages and the warps' column sums.
inline std::size_t importance_smem_bytes(int d, std::size_t element_bytes) {
  return element_bytes * (static_cast<std::size_t>(kImportanceWarps) * 16 + 2 * kImportanceKeys) * d +
         sizeof(float) * kImportanceWarps * kImportanceKeys;
}

// Pass `pass` over key chunk blockIdx.x of (b, h) = (blockIdx.z, blockIdx.y), 256 threads; row r is query
// lq - rows + r. p.scale is the logit scale in log2 units (log2(e) / sqrt(d)).
template <typename Element>
__global__ void __launch_bounds__(kImportanceWarps * 32, 2) pbs_importance_kernel(const LastRowsParams p, int pass) {
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
  const int d = p.d, groups = d / 8, lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, q4 = lane % 4;
  Element* qs = reinterpret_cast<Element*>(smem);  // [128][d], swizzled groups
  unsigned char* stages = smem + sizeof(Element) * kImportanceWarps * 16 * d;
  const std::size_t stage_bytes = sizeof(Element) * kImportanceKeys * d;
  float* column_sums = reinterpret_cast<float*>(stages + 2 * stage_bytes);  // [warp][kImportanceKeys]
  const auto* q = static_cast<const Element*>(p.q) + b * p.q_batch + static_cast<std::int64_t>(p.lengths.q_start(b)) * p.q_token + h * p.q_head;
  const auto* k = static_cast<const Element*>(p.k) + b * p.k_batch + static_cast<std::int64_t>(p.lengths.k_start(b)) * p.k_token +
                  (h / (p.heads_q / p.heads_kv)) * p.k_head;
  for (int i = threadIdx.x; i < kImportanceWarps * 16 * groups; i += blockDim.x) {  // joins the first stage's group
    const int r = i / groups, grp = i % groups;
    async_copy16(qs + (r * groups + swizzled(r, grp, groups)) * 8, q + static_cast<std::int64_t>(lq - rows + (r < rows ? r : 0)) * p.q_token + grp * 8,
                 r < rows);
  }
  int copy_of[4];  // this thread's copies of a key stage: key * 256 + group, or -1
  unsigned copy_at[4];
#pragma unroll
  for (int c = 0; c < 4; ++c) {
    const int i = threadIdx.x + c * static_cast<int>(blockDim.x), n = i / groups, grp = i % groups;
    copy_of[c] = i < kImportanceKeys * groups ? n * 256 + grp : -1;
    copy_at[c] = static_cast<unsigned>((n * groups + swizzled(n, grp, groups)) * 16);
  }
  const int tiles = (j_end - j0 + kImportanceKeys - 1) / kImportanceKeys;
  auto issue = [&](int t) {
    unsigned char* stage = stages + (t % 2) * stage_bytes;
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      if (copy_of[c] < 0) continue;
      const int j = j0 + t * kImportanceKeys + copy_of[c] / 256;
      async_copy16(stage + copy_at[c], k + static_cast<std::int64_t>(j < j_end ? j : j0) * p.k_token + (copy_of[c] % 256) * 8, j < j_end);
    }
    async_commit();
  };

  // This lane's rows: warp 16 + g and + 8. Pass 1 starts from their merged statistics.
  const bool row_here[2] = {warp * 16 + g < rows, warp * 16 + g + 8 < rows};
  float m[2] = {-INFINITY, -INFINITY}, z[2] = {0.f, 0.f};
  if (pass == 1) {
    for (int i = 0; i < 2; ++i) {
      const double* stats = p.partial + head * p.chunks * p.rows * 2 + (warp * 16 + g + 8 * i) * 2;
      double mm = -INFINITY, zz = 0.0;
      for (int c = 0; row_here[i] && c * kProxyChunk < keys; ++c) mm = fmax(mm, stats[c * p.rows * 2]);
      for (int c = 0; row_here[i] && c * kProxyChunk < keys; ++c)
        if (stats[c * p.rows * 2] != -INFINITY) zz += stats[c * p.rows * 2 + 1] * exp2(stats[c * p.rows * 2] - mm);
      m[i] = mm == -INFINITY ? 0.f : static_cast<float>(mm);
      z[i] = zz > 0.0 ? static_cast<float>(1.0 / (zz * rows)) : 0.f;  // pass 1 keeps 1 / (z rows)
    }
  }
  const float scale = static_cast<float>(p.scale);
  issue(0);
  for (int t = 0; t < tiles; ++t) {
    next_stage(t, tiles, issue);
    float acc[kImportanceKeys / 8][4] = {};
    const uint4* stage = reinterpret_cast<const uint4*>(stages + (t % 2) * stage_bytes);
    const uint4* rows_smem = reinterpret_cast<const uint4*>(qs);
    for (int step = 0; step < d / 32; ++step) {
      const int grp = step * 4 + q4, r0 = warp * 16 + g;
      const RowFragment a{rows_smem[r0 * groups + swizzled(r0, grp, groups)], rows_smem[(r0 + 8) * groups + swizzled(r0 + 8, grp, groups)]};
#pragma unroll
      for (int nt = 0; nt < kImportanceKeys / 8; ++nt) {
        const int n = nt * 8 + g;
        mma_step<Element>(acc[nt], a, stage[n * groups + swizzled(n, grp, groups)]);
      }
    }
    const int key0 = j0 + t * kImportanceKeys;
    if (pass == 0) {  // each row's running maximum and exp-sum over this lane's keys
      auto counted = [&](int nt, int e) { return row_here[e / 2] && key0 + nt * 8 + 2 * q4 + (e % 2) < j_end; };
      float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int nt = 0; nt < kImportanceKeys / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (counted(nt, e)) tile_max[e / 2] = fmaxf(tile_max[e / 2], acc[nt][e] * scale);
      raise_row_maxima(m, z, tile_max);
#pragma unroll
      for (int nt = 0; nt < kImportanceKeys / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (counted(nt, e)) z[e / 2] += exp2f(acc[nt][e] * scale - m[e / 2]);
    } else {  // probabilities summed over this warp's rows, per key
      float column[kImportanceKeys / 8][2];
#pragma unroll
      for (int nt = 0; nt < kImportanceKeys / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          column[nt][e] = 0.f;
          for (int i = 0; i < 2; ++i)
            if (row_here[i]) column[nt][e] += exp2f(acc[nt][2 * i + e] * scale - m[i]) * z[i];
          for (int offset = 4; offset < 32; offset *= 2) column[nt][e] += __shfl_xor_sync(0xffffffffu, column[nt][e], offset);
          if (g == 0) column_sums[warp * kImportanceKeys + nt * 8 + 2 * q4 + e] = column[nt][e];
        }
      __syncthreads();
      if (threadIdx.x < kImportanceKeys && key0 + static_cast<int>(threadIdx.x) < j_end) {
        float sum = 0.f;
        for (int w = 0; w < kImportanceWarps; ++w) sum += column_sums[w * kImportanceKeys + threadIdx.x];
        p.importance[head * p.width + key0 + threadIdx.x] = static_cast<double>(sum);
      }
    }
    __syncthreads();  // the stage (and the column sums) are consumed before they are written again
  }
  if (pass == 0) {
    for (int i = 0; i < 2; ++i) {
      merge_row_over_quad(m[i], z[i]);
      if (q4 == 0 && row_here[i]) {
        partial[(warp * 16 + g + 8 * i) * 2] = m[i];
        partial[(warp * 16 + g + 8 * i) * 2 + 1] = z[i];
      }
    }
  }
}

}  // namespace sparsefill::cuda::select
