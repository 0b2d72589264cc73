// Correct-first block-sparse attention kernel (design note).
//
// One CTA computes 64 query rows of one (sequence, query head); two threads share a row, each holding half of
// the head_dim of q and of the output accumulator in registers. The CTA walks its mask row's key blocks,
// stages 32 keys and values at a time in shared memory (fp32), and runs an online softmax in base 2.
// Causality (bottom-right) is checked per element; blocks entirely above the diagonal are skipped. Indices
// outside [0, nKb) are ignored, so no index value makes the kernel read out of bounds. Empty rows write 0 and
// LSE -inf.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

#include "attention/attention_params.hpp"
#include "attention/attention_tiles.hpp"

namespace sparsefill::cuda {

template <typename T>
__device__ inline float to_float(T x);
template <>
__device__ inline float to_float<__nv_bfloat16>(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
template <>
__device__ inline float to_float<__half>(__half x) {
  return __half2float(x);
}

template <typename T>
__device__ inline T from_float(float x);
template <>
__device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16(x);
}
template <>
__device__ inline __half from_float<__half>(float x) {
  return __float2half(x);
}

template <typename Element, int kHeadDim>
__global__ void __launch_bounds__(kThreads) simt_block_sparse_attention(const AttentionKernelParams p) {
  constexpr int kHalf = kHeadDim / kThreadsPerRow;
  __shared__ float keys[kKeyTile][kHeadDim];
  __shared__ float values[kKeyTile][kHeadDim];

  const int item = p.schedule[blockIdx.x];
  const int tile = item % p.q_tiles;
  const int h = (item / p.q_tiles) % p.heads_q;
  const int b = item / (p.q_tiles * p.heads_q);
  const int start_q = p.cu_seqlens_q ? p.cu_seqlens_q[b] : 0;
  const int start_k = p.cu_seqlens_k ? p.cu_seqlens_k[b] : 0;
  const int lq = p.cu_seqlens_q ? p.cu_seqlens_q[b + 1] - start_q : p.seqlen_q;
  const int lk = p.cu_seqlens_k ? p.cu_seqlens_k[b + 1] - start_k : p.seqlen_k;
  const int row0 = tile * kTileRows;
  const int row = row0 + threadIdx.x / kThreadsPerRow;
  const int part = threadIdx.x % kThreadsPerRow;
  const bool valid_row = row < lq;
  float* lse_slot = p.lse && part == 0 && row < p.seqlen_q
                        ? p.lse + (static_cast<long long>(b) * p.heads_q + h) * p.seqlen_q + row
                        : nullptr;
  if (row0 >= lq) {  // a tile past a shorter sequence's end (varlen): only LSE padding to write
    if (lse_slot) *lse_slot = -INFINITY;
    return;
  }
  const int hk = h / (p.heads_q / p.heads_kv);
  const int shift = lk - lq;

  const Element* q = static_cast<const Element*>(p.q) + b * p.q_batch + (start_q + row) * p.q_token +
                     h * p.q_head + part * kHalf;
  float q_reg[kHalf];
  float acc[kHalf];
#pragma unroll
  for (int c = 0; c < kHalf; ++c) {
    q_reg[c] = valid_row ? to_float(q[c]) * p.scale_log2 : 0.0f;
    acc[c] = 0.0f;
  }
  float row_max = -INFINITY, row_sum = 0.0f;

  const int mh = p.mask_heads == 1 ? 0 : (p.mask_heads == p.heads_q ? h : hk);
  const int u = row0 / p.block_q;
  const long long mask_row = (static_cast<long long>(b) * p.mask_heads + mh) * p.num_q_blocks + u;
  const int count = min(max(p.kv_num_blocks[mask_row], 0), p.num_k_blocks);
  const std::int32_t* blocks = p.kv_indices + mask_row * p.num_k_blocks;
  const int tile_last_row = min(row0 + kTileRows, lq) - 1;
  const Element* k_base = static_cast<const Element*>(p.k) + b * p.k_batch + hk * p.k_head;
  const Element* v_base = static_cast<const Element*>(p.v) + b * p.v_batch + hk * p.v_head;

  for (int n = 0; n < count; ++n) {
    const int kb = blocks[n];
    if (kb < 0 || kb >= p.num_k_blocks) continue;
    const int key_begin = kb * p.block_k;
    const int key_end = min(key_begin + p.block_k, lk);
    if (key_begin >= key_end) continue;
    if (p.causal && key_begin > tile_last_row + shift) continue;  // the whole block is above the diagonal
    for (int key0 = key_begin; key0 < key_end; key0 += kKeyTile) {
      const int keys_here = min(kKeyTile, key_end - key0);
      __syncthreads();
      for (int e = threadIdx.x; e < keys_here * kHeadDim; e += kThreads) {
        const int j = e / kHeadDim, c = e % kHeadDim;
        keys[j][c] = to_float(k_base[(start_k + key0 + j) * p.k_token + c]);
        values[j][c] = to_float(v_base[(start_k + key0 + j) * p.v_token + c]);
      }
      __syncthreads();
      for (int j = 0; j < keys_here; ++j) {
        float s = 0.0f;
#pragma unroll
        for (int c = 0; c < kHalf; ++c) s += q_reg[c] * keys[j][part * kHalf + c];
        s += __shfl_xor_sync(0xffffffffu, s, 1);
        const bool allowed = valid_row && (!p.causal || key0 + j <= row + shift);
        if (!allowed) continue;
        const float new_max = fmaxf(row_max, s);
        const float correction = exp2f(row_max - new_max);
        const float weight = exp2f(s - new_max);
        row_sum = row_sum * correction + weight;
#pragma unroll
        for (int c = 0; c < kHalf; ++c) acc[c] = acc[c] * correction + weight * values[j][part * kHalf + c];
        row_max = new_max;
      }
    }
  }
  if (!valid_row) {
    if (lse_slot) *lse_slot = -INFINITY;
    return;
  }
  Element* out = static_cast<Element*>(p.out) + b * p.o_batch + (start_q + row) * p.o_token + h * p.o_head +
                 part * kHalf;
  const float inv = row_sum > 0.0f ? 1.0f / row_sum : 0.0f;
#pragma unroll
  for (int c = 0; c < kHalf; ++c) out[c] = from_float<Element>(acc[c] * inv);
  if (lse_slot) *lse_slot = row_sum > 0.0f ? (row_max + log2f(row_sum)) * 0.6931471805599453f : -INFINITY;
}

// Work of each (sequence, head, tile) item: its mask row's block count (the schedule sorts by it, heaviest
// first).
__global__ void tile_work_kernel(const AttentionKernelParams p, int items, std::int32_t* work,
                                 std::int32_t* ids) {
  const int item = blockIdx.x * blockDim.x + threadIdx.x;
  if (item >= items) return;
  const int tile = item % p.q_tiles;
  const int h = (item / p.q_tiles) % p.heads_q;
  const int b = item / (p.q_tiles * p.heads_q);
  const int mh = p.mask_heads == 1 ? 0 : (p.mask_heads == p.heads_q ? h : h / (p.heads_q / p.heads_kv));
  const int u = tile * kTileRows / p.block_q;
  work[item] = p.kv_num_blocks[(static_cast<long long>(b) * p.mask_heads + mh) * p.num_q_blocks + u];
  ids[item] = item;
}

}  // namespace sparsefill::cuda
