// Tensor-core block-sparse attention kernel (design note).
//
// One CTA computes 64 query rows of one (sequence, query head) with 4 warps of 16 rows. Per 64-key tile of a
// selected key block: K and V are staged in shared memory; each warp computes its 16x64 score tile S = Q K^T
// with WMMA (bf16/fp16 in, fp32 accumulate; Q fragments stay in registers), two threads per row apply the
// mask and the online softmax in base 2 and write P in the input dtype, then the warp computes P V (16 x
// head_dim) with WMMA into a shared fp32 tile that the row's threads fold into their register accumulators.
// Causality is per element on partial tiles; key blocks entirely above the diagonal are skipped; indices
// outside [0, nKb) are ignored. Empty rows write 0 and LSE -inf. With a key order (PBS) K/V rows are gathered
// by the order and causality compares original positions, element by element.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <cmath>

#include "attention/attention_params.hpp"
#include "attention/attention_tiles.hpp"

namespace sparsefill::cuda {

// Where staged row r comes from: row r of src, or with a key order (PBS) row order[r] of src, which must lie
// in [0, limit) (other values give a zero row; the softmax masks them).
struct RowSource {
  const std::int32_t* order = nullptr;
  int limit = 0;
  __device__ int row(int r) const {
    if (!order) return r;
    const int o = order[r];
    return o >= 0 && o < limit ? o : -1;
  }
};

// Copies `rows` rows of kHeadDim elements (see RowSource; row i at src + i * stride) into dst [kKeyTile or
// kTileRows][kHeadDim], zero-filling rows >= present. 16-byte vectors when `vectors` (aligned rows), else
// element by element.
template <typename Element, int kHeadDim>
__device__ inline void stage_rows(Element* dst, const Element* src, std::int64_t stride, int rows,
                                  int present, bool vectors, RowSource from = {}) {
  if (vectors) {
    constexpr int kPerVector = 16 / sizeof(Element), kVectorsPerRow = kHeadDim / kPerVector;
    for (int e = threadIdx.x; e < rows * kVectorsPerRow; e += kThreads) {
      const int r = e / kVectorsPerRow, c = (e % kVectorsPerRow) * kPerVector;
      const int s = r < present ? from.row(r) : -1;
      const uint4 value = s >= 0 ? *reinterpret_cast<const uint4*>(src + s * stride + c) : make_uint4(0, 0, 0, 0);
      *reinterpret_cast<uint4*>(dst + r * kHeadDim + c) = value;
    }
    return;
  }
  for (int e = threadIdx.x; e < rows * kHeadDim; e += kThreads) {
    const int r = e / kHeadDim, c = e % kHeadDim;
    const int s = r < present ? from.row(r) : -1;
    dst[e] = s >= 0 ? src[s * stride + c] : Element(0.0f);
  }
}

// Shared memory of one CTA, in bytes: Q, K, V tiles (input dtype), scores and P V (fp32), P (input dtype).
template <typename Element, int kHeadDim>
constexpr int tensor_core_smem_bytes() {
  return (kTileRows + 2 * kKeyTile) * kHeadDim * static_cast<int>(sizeof(Element)) +
         kTileRows * kKeyTile * 4 + kTileRows * kHeadDim * 4 +
         kTileRows * kKeyTile * static_cast<int>(sizeof(Element));
}

template <typename Element, int kHeadDim>
__global__ void __launch_bounds__(kThreads)
    tensor_core_block_sparse_attention(const AttentionKernelParams p) {
  namespace wmma = nvcuda::wmma;
  constexpr int kHalf = kHeadDim / kThreadsPerRow;
  constexpr int kWarpRows = 16;
  extern __shared__ __align__(128) unsigned char smem[];
  Element* q_s = reinterpret_cast<Element*>(smem);
  Element* k_s = q_s + kTileRows * kHeadDim;
  Element* v_s = k_s + kKeyTile * kHeadDim;
  float* s_s = reinterpret_cast<float*>(v_s + kKeyTile * kHeadDim);
  float* pv_s = s_s + kTileRows * kKeyTile;
  Element* p_s = reinterpret_cast<Element*>(pv_s + kTileRows * kHeadDim);

  const int item = p.schedule[blockIdx.x];
  const int tile = item % p.q_tiles;
  const int h = (item / p.q_tiles) % p.heads_q;
  const int b = item / (p.q_tiles * p.heads_q);
  const int start_q = p.cu_seqlens_q ? p.cu_seqlens_q[b] : 0;
  const int start_k = p.cu_seqlens_k ? p.cu_seqlens_k[b] : 0;
  const int lq = p.cu_seqlens_q ? p.cu_seqlens_q[b + 1] - start_q : p.seqlen_q;
  const int lk = p.cu_seqlens_k ? p.cu_seqlens_k[b + 1] - start_k : p.seqlen_k;
  const int row0 = tile * kTileRows;
  const int local_row = threadIdx.x / kThreadsPerRow;
  const int row = row0 + local_row;
  const int part = threadIdx.x % kThreadsPerRow;
  const int warp = threadIdx.x / 32;
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

  // Q tile (zero rows past the sequence) into shared memory, then into this warp's fragments.
  const Element* q_base =
      static_cast<const Element*>(p.q) + b * p.q_batch + h * p.q_head + (start_q + row0) * p.q_token;
  stage_rows<Element, kHeadDim>(q_s, q_base, p.q_token, kTileRows, min(kTileRows, lq - row0),
                                p.vector_loads != 0);
  __syncthreads();
  wmma::fragment<wmma::matrix_a, 16, 16, 16, Element, wmma::row_major> q_frag[kHeadDim / 16];
#pragma unroll
  for (int kk = 0; kk < kHeadDim / 16; ++kk)
    wmma::load_matrix_sync(q_frag[kk], q_s + warp * kWarpRows * kHeadDim + kk * 16, kHeadDim);

  float acc[kHalf];
#pragma unroll
  for (int c = 0; c < kHalf; ++c) acc[c] = 0.0f;
  float row_max = -INFINITY, row_sum = 0.0f;

  const int mh = p.mask_heads == 1 ? 0 : (p.mask_heads == p.heads_q ? h : hk);
  const int u = row0 / p.block_q;
  const long long mask_row = (static_cast<long long>(b) * p.mask_heads + mh) * p.num_q_blocks + u;
  const int count = min(max(p.kv_num_blocks[mask_row], 0), p.num_k_blocks);
  const std::int32_t* blocks = p.kv_indices + mask_row * p.num_k_blocks;
  const int tile_last_row = min(row0 + kTileRows, lq) - 1;
  const Element* k_base = static_cast<const Element*>(p.k) + b * p.k_batch + hk * p.k_head;
  const Element* v_base = static_cast<const Element*>(p.v) + b * p.v_batch + hk * p.v_head;
  // PBS: position j of this head's keys holds original key order[j]; causality compares original positions.
  const std::int32_t* order =
      p.key_order ? p.key_order + (static_cast<long long>(b) * p.heads_q + h) * p.seqlen_k : nullptr;

  for (int n = 0; n < count; ++n) {
    const int kb = blocks[n];
    if (kb < 0 || kb >= p.num_k_blocks) continue;
    const int key_begin = kb * p.block_k;
    const int key_end = min(key_begin + p.block_k, lk);
    if (key_begin >= key_end) continue;
    if (p.causal && !order && key_begin > tile_last_row + shift) continue;  // the block is above the diagonal
    for (int key0 = key_begin; key0 < key_end; key0 += kKeyTile) {
      const int keys_here = min(kKeyTile, key_end - key0);
      __syncthreads();  // the previous tile's K, V and P V are no longer read
      const RowSource from{order ? order + key0 : nullptr, lk};
      const std::int64_t first = order ? start_k : start_k + key0;  // with an order, rows index from the start
      stage_rows<Element, kHeadDim>(k_s, k_base + first * p.k_token, p.k_token, kKeyTile, keys_here,
                                    p.vector_loads != 0, from);
      stage_rows<Element, kHeadDim>(v_s, v_base + first * p.v_token, p.v_token, kKeyTile, keys_here,
                                    p.vector_loads != 0, from);
      __syncthreads();
      // S (16 x 64 per warp) = Q K^T.
#pragma unroll
      for (int nj = 0; nj < kKeyTile / 16; ++nj) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> s_frag;
        wmma::fill_fragment(s_frag, 0.0f);
#pragma unroll
        for (int kk = 0; kk < kHeadDim / 16; ++kk) {
          wmma::fragment<wmma::matrix_b, 16, 16, 16, Element, wmma::col_major> k_frag;
          wmma::load_matrix_sync(k_frag, k_s + nj * 16 * kHeadDim + kk * 16, kHeadDim);
          wmma::mma_sync(s_frag, q_frag[kk], k_frag, s_frag);
        }
        wmma::store_matrix_sync(s_s + warp * kWarpRows * kKeyTile + nj * 16, s_frag, kKeyTile,
                                wmma::mem_row_major);
      }
      __syncwarp();
      // Online softmax on this thread's half of its row; P in the input dtype.
      constexpr int kCols = kKeyTile / kThreadsPerRow;
      const float* s_row = s_s + local_row * kKeyTile + part * kCols;
      float tile_max = -INFINITY;
      float scores[kCols];
#pragma unroll
      for (int c = 0; c < kCols; ++c) {
        const int position = key0 + part * kCols + c;
        const bool present = part * kCols + c < keys_here;
        const int key = order && present ? order[position] : position;  // the original position
        const bool allowed = valid_row && present && key >= 0 && key < lk && (!p.causal || key <= row + shift);
        scores[c] = allowed ? s_row[c] * p.scale_log2 : -INFINITY;
        tile_max = fmaxf(tile_max, scores[c]);
      }
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
      const float new_max = fmaxf(row_max, tile_max);
      const float correction = new_max == -INFINITY ? 1.0f : exp2f(row_max - new_max);
      float tile_sum = 0.0f;
      Element* p_row = p_s + local_row * kKeyTile + part * kCols;
#pragma unroll
      for (int c = 0; c < kCols; ++c) {
        const float weight = new_max == -INFINITY ? 0.0f : exp2f(scores[c] - new_max);
        tile_sum += weight;
        p_row[c] = Element(weight);
      }
      tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, 1);
      row_sum = row_sum * correction + tile_sum;
      row_max = new_max;
      __syncwarp();
      // P V (16 x head_dim per warp) into shared fp32, folded into the register accumulators.
#pragma unroll
      for (int nd = 0; nd < kHeadDim / 16; ++nd) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> o_frag;
        wmma::fill_fragment(o_frag, 0.0f);
#pragma unroll
        for (int kk = 0; kk < kKeyTile / 16; ++kk) {
          wmma::fragment<wmma::matrix_a, 16, 16, 16, Element, wmma::row_major> p_frag;
          wmma::fragment<wmma::matrix_b, 16, 16, 16, Element, wmma::row_major> v_frag;
          wmma::load_matrix_sync(p_frag, p_s + warp * kWarpRows * kKeyTile + kk * 16, kKeyTile);
          wmma::load_matrix_sync(v_frag, v_s + kk * 16 * kHeadDim + nd * 16, kHeadDim);
          wmma::mma_sync(o_frag, p_frag, v_frag, o_frag);
        }
        wmma::store_matrix_sync(pv_s + warp * kWarpRows * kHeadDim + nd * 16, o_frag, kHeadDim,
                                wmma::mem_row_major);
      }
      __syncwarp();
      const float* pv_row = pv_s + local_row * kHeadDim + part * kHalf;
#pragma unroll
      for (int c = 0; c < kHalf; ++c) acc[c] = acc[c] * correction + pv_row[c];
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
  for (int c = 0; c < kHalf; ++c) out[c] = Element(acc[c] * inv);
  if (lse_slot) *lse_slot = row_sum > 0.0f ? (row_max + log2f(row_sum)) * 0.6931471805599453f : -INFINITY;
}

}  // namespace sparsefill::cuda
