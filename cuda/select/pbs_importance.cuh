// PBS-Attn's global-importance proxy on wgmma (algorithms.md §3.3 step 1; CPU: pbs_importance in
// src/select/pbs_selector.cpp): s[j] = mean over the last B queries r of softmax_j(q_r . k_j / sqrt(d)) over
// the keys of complete segments, no causal mask, per query head.
//
// Precision: the spec's score precision, fp32 (algorithms.md §0.4): the bf16/fp16 products are exact, logits
// and sums are fp32 (the CPU's are fp64), so two keys whose importances lie within ~1e-6 of each other may
// rank in the other order than on the CPU; the mask is PBS's mask for the order the GPU ranked.
//
// Three launches over key chunks of kProxyChunk keys, a CTA per (chunk, head, sequence) of two warpgroups, 64
// of the (up to 128) last query rows each. The rows are staged once per CTA and the chunk's keys in a
// two-stage cp.async ring of kKeys keys, both in the 128-byte (64-byte for head_dim not a multiple of 64)
// swizzled GMMA layouts, and a warpgroup multiplies a stage by its rows with one wgmma batch (64 x kKeys x d,
// both operands in shared memory). The accumulator holds, at register i = c + 2 e + 4 n, row 16 warp + lane /
// 4 + 8 e and key 8 n + 2 (lane % 4) + c of the stage (the mma.sync m16n8 layout repeated over the columns).
//  - pass 0 writes each chunk's row maximum and exp-sum (base 2);
//  - pbs_row_offsets_kernel merges them per row (chunk order) into o_r = m_r + log2(z_r * rows);
//  - pass 1 sums exp2(logit - o_r) over the rows, per key: within a warp by a reduce-scatter over the lanes
//  of
//    a column, then over the warps in warp order.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cutlass/arch/barrier.h>

#include <cstdint>
#include <cute/atom/mma_traits_sm90_gmma.hpp>
#include <cute/tensor.hpp>

#include "common/warpgroup_gemm.cuh"
#include "select/last_rows.cuh"
#include "select/mma_tiles.cuh"
#include "select/pbs_kernels.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kImportanceRows = 128;     // the last block's rows, 64 a warpgroup
inline constexpr int kImportanceThreads = 256;  // two warpgroups
inline constexpr int kImportanceMaxDim = 256;
inline constexpr int kImportanceAlign = 1024;  // the swizzled tiles' alignment

// Tiles and shared memory of the proxy for head_dim kD (a multiple of 32).
template <typename Element, int kD>
struct ImportanceTiles {
  using E = typename MmaOf<Element>::CuteElement;
  static constexpr int kKeys = kD <= 128 ? 128 : 64;  // keys a stage: 32 KB at d = 128 and at d = 256
  static constexpr int kStages = 2;
  using Atom =
      std::conditional_t<kD % 64 == 0, cute::GMMA::Layout_K_SW128_Atom<E>, cute::GMMA::Layout_K_SW64_Atom<E>>;
  using RowsLayout =
      decltype(cute::tile_to_shape(Atom{}, cute::Shape<cute::Int<kImportanceRows>, cute::Int<kD>>{}));
  using KeysLayout = decltype(cute::tile_to_shape(
      Atom{}, cute::Shape<cute::Int<kKeys>, cute::Int<kD>, cute::Int<kStages>>{}));
  using Mma = decltype(cute::make_tiled_mma(
      cute::GMMA::ss_op_selector<E, E, float, cute::Shape<cute::_64, cute::Int<kKeys>, cute::Int<kD>>>()));
  struct Shared {
    cute::array_aligned<E, cute::cosize_v<RowsLayout>, kImportanceAlign> rows;
    cute::array_aligned<E, cute::cosize_v<KeysLayout>, kImportanceAlign> keys;
    float column_sums[kImportanceThreads / 32][kKeys];  // [warp][key of the stage]
  };
};

template <typename Element, int kD>
constexpr std::size_t importance_smem_bytes() {
  return kImportanceAlign + sizeof(typename ImportanceTiles<Element, kD>::Shared);
}

// Pass `pass` (0 or 1) over key chunk blockIdx.x of (b, h) = (blockIdx.z, blockIdx.y), kImportanceThreads
// threads; row r is query lq - rows + r. p.scale is the logit scale in log2 units (log2(e) / sqrt(d)).
template <typename Element, int kD>
__global__ void __launch_bounds__(kImportanceThreads, kD <= 128 ? 2 : 1)
    pbs_importance_kernel(const LastRowsParams p, int pass) {
  using namespace cute;
  using Tiles = ImportanceTiles<Element, kD>;
  using E = typename Tiles::E;
  constexpr int kKeys = Tiles::kKeys, kGroups = kD / 8;  // 16-byte groups of a row
  extern __shared__ __align__(16) unsigned char importance_smem[];
  unsigned char* base = importance_smem;
  base += (kImportanceAlign - static_cast<int>(__cvta_generic_to_shared(base) % kImportanceAlign)) %
          kImportanceAlign;
  auto& shared = *reinterpret_cast<typename Tiles::Shared*>(base);
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
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warpgroup = warp / 4, g = lane / 4,
            q4 = lane % 4;
  Tensor s_rows = make_tensor(make_smem_ptr(shared.rows.data()), typename Tiles::RowsLayout{});
  Tensor s_keys = make_tensor(make_smem_ptr(shared.keys.data()), typename Tiles::KeysLayout{});
  const auto* q = static_cast<const Element*>(p.q) + b * p.q_batch +
                  static_cast<std::int64_t>(p.lengths.q_start(b)) * p.q_token + h * p.q_head;
  const auto* k = static_cast<const Element*>(p.k) + b * p.k_batch +
                  static_cast<std::int64_t>(p.lengths.k_start(b)) * p.k_token +
                  (h / (p.heads_q / p.heads_kv)) * p.k_head;
  const int tiles = (j_end - j0 + kKeys - 1) / kKeys;
  // Rows past `rows` and keys past the chunk are zero-filled (their logits are excluded below).
  for (int i = threadIdx.x; i < kImportanceRows * kGroups; i += kImportanceThreads) {
    const int n = i / kGroups, grp = i % kGroups;
    async_copy16(&s_rows(n, grp * 8),
                 q + static_cast<std::int64_t>(lq - rows + (n < rows ? n : 0)) * p.q_token + grp * 8,
                 n < rows);
  }
  // This thread's copies of a stage: key n_c (of the stage) and its 16-byte group, at a fixed shared address
  // of stage 0 (stages follow each other).
  constexpr int kCopies = kKeys * kGroups / kImportanceThreads;
  static_assert(kCopies * kImportanceThreads == kKeys * kGroups, "whole copies per thread");
  const std::uint32_t stage_bytes =
      static_cast<std::uint32_t>(sizeof(E) * (&s_keys(0, 0, 1) - &s_keys(0, 0, 0)));
  std::uint32_t copy_smem[kCopies];
#pragma unroll
  for (int c = 0; c < kCopies; ++c) {
    const int i = threadIdx.x + c * kImportanceThreads;
    copy_smem[c] =
        static_cast<std::uint32_t>(__cvta_generic_to_shared(&s_keys(i / kGroups, i % kGroups * 8, 0)));
  }
  auto issue = [&](int t) {
#pragma unroll
    for (int c = 0; c < kCopies; ++c) {
      const int i = threadIdx.x + c * kImportanceThreads, j = j0 + t * kKeys + i / kGroups;
      async_copy16_shared(copy_smem[c] + (t % Tiles::kStages) * stage_bytes,
                          k + static_cast<std::int64_t>(j < j_end ? j : j0) * p.k_token + i % kGroups * 8,
                          j < j_end);
    }
    async_commit();
  };
  issue(0);  // with the rows

  typename Tiles::Mma mma;
  auto thread_mma = mma.get_thread_slice(threadIdx.x % 128);
  Tensor rows_a =
      thread_mma.partition_fragment_A(local_tile(s_rows, Shape<_64, Int<kD>>{}, make_coord(warpgroup, 0)));
  Tensor keys_b = thread_mma.partition_fragment_B(s_keys);
  Tensor acc = partition_fragment_C(mma, Shape<_64, Int<kKeys>>{});
  static_assert(decltype(size(acc))::value == kKeys / 2, "16 x kKeys accumulators a warp");
  const bool warpgroup_rows =
      warpgroup * 64 < rows;  // a warpgroup without rows (block 64) multiplies nothing

  // This lane's rows warp * 16 + g and + 8. Pass 0: running base-2 maximum and exp-sum; pass 1: the rows'
  // offsets o_r (absent rows: +inf, so they add nothing).
  const int r0 = warp * 16 + g;
  const bool row_here[2] = {r0 < rows, r0 + 8 < rows};
  float m[2] = {-INFINITY, -INFINITY}, z[2] = {0.f, 0.f};
  if (pass == 1)
    for (int i = 0; i < 2; ++i)
      m[i] = row_here[i] ? static_cast<float>(p.partial[importance_row_slot(p, head, r0 + 8 * i)]) : INFINITY;
  const float scale = static_cast<float>(p.scale);

  for (int t = 0; t < tiles; ++t) {
    next_stage(t, tiles, issue);
    cutlass::arch::fence_view_async_shared();  // this thread's cp.async data, to the wgmma's reads
    __syncthreads();
    const int key0 = j0 + t * kKeys;
    if (warpgroup_rows) {
      warpgroup_gemm<true>(mma, rows_a, keys_b(_, _, _, t % Tiles::kStages), acc);
      if (key0 + kKeys > j_end)  // the chunk's last keys: columns past its end count for nothing
#pragma unroll
        for (int i = 0; i < kKeys / 2; ++i)
          if (key0 + 8 * (i / 4) + 2 * q4 + i % 2 >= j_end) acc(i) = -INFINITY;
      if (pass == 0) {
        float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int i = 0; i < kKeys / 2; ++i) tile_max[(i / 2) % 2] = fmaxf(tile_max[(i / 2) % 2], acc(i));
        tile_max[0] *= scale;  // scale > 0: the maximum of the scaled logits
        tile_max[1] *= scale;
        raise_row_maxima(m, z, tile_max);
        const float shift[2] = {m[0] == -INFINITY ? 0.f : m[0], m[1] == -INFINITY ? 0.f : m[1]};
#pragma unroll
        for (int i = 0; i < kKeys / 2; ++i)
          z[(i / 2) % 2] += exp2_flushed(fmaf(acc(i), scale, -shift[(i / 2) % 2]));
      } else {
        float column[kKeys / 4];  // [n][c]: this lane's two rows' probabilities of key 8 n + 2 q4 + c
#pragma unroll
        for (int n = 0; n < kKeys / 8; ++n)
#pragma unroll
          for (int c = 0; c < 2; ++c)
            column[n * 2 + c] = exp2_flushed(fmaf(acc(4 * n + c), scale, -m[0])) +
                                exp2_flushed(fmaf(acc(4 * n + 2 + c), scale, -m[1]));
        reduce_scatter_over_rows(column, lane);
        constexpr int kTiles = kKeys / 64;  // column tiles whose sums a lane keeps: 8 g kTiles + [0, kTiles)
#pragma unroll
        for (int u = 0; u < kTiles; ++u)
          *reinterpret_cast<float2*>(&shared.column_sums[warp][8 * (kTiles * g + u) + 2 * q4]) =
              make_float2(column[2 * u], column[2 * u + 1]);
      }
    }
    if (pass == 1) {
      __syncthreads();
      const int warps = (rows + 15) / 16;  // warps holding rows
      for (int i = threadIdx.x; i < kKeys; i += kImportanceThreads) {
        const int key = key0 + i;
        if (key >= j_end) break;
        float sum = 0.f;
        for (int w = 0; w < warps; ++w) sum += shared.column_sums[w][i];
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
