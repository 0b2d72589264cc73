// PBS-Attn's permutation on the GPU (algorithms.md §3.3 steps 1-2; the CPU form is src/select/pbs_selector.cpp).
//
// Global-importance proxy: s[j] = mean over the last B queries r of softmax_j(q_r . k_j / sqrt(d)), over the keys
// of complete segments, no causal mask, per query head. Logits are fp64 sums over the dims in the CPU's order
// (fused multiply-adds: fp64 rounding apart); the softmax runs in two passes over key chunks: the first keeps
// each chunk's row maximum and exp-sum, the second merges them per row and sums each key's probabilities over
// the rows in row order, as the CPU does. The softmax normaliser sums in another order (fp64 rounding).
// Segmented permutation: inside each complete segment the keys are ranked by s, descending, ties by the lower
// index (the CPU's stable sort): one thread per key counts the keys ranked before it.
#pragma once
#include <cstdint>

#include "select/sequence_lengths.cuh"
#include "select/stride_scoring.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kProxyChunk = 1024;  // keys per CTA of the proxy passes
inline constexpr int kProxyTile = 32;     // keys staged in shared memory per step
inline constexpr int kMaxSegment = 1024;  // tokens per segment the rank kernel takes (one thread each)

struct PbsParams {
  const void* q;
  const void* k;
  std::int64_t q_batch, q_token, q_head, k_batch, k_token, k_head;  // element strides (batch 0 for varlen)
  int batch, heads_q, heads_kv, d, width;  // width: max_seqlen_k, the key_order row length
  Lengths lengths;                         // lengths.block = B, the proxy's query rows
  int segment;
  double* partial;              // [batch, heads_q, chunks, B, 2]: each chunk's row max and exp-sum
  int chunks;                   // ceil(width / kProxyChunk)
  double* importance;           // [batch, heads_q, width]
  std::int32_t* key_order;      // [batch, heads_q, width] out
};

// Shared memory of the proxy passes: the B query rows (fp32, padded) and one key tile (fp32).
inline std::size_t proxy_smem_bytes(int block, int d) {
  return sizeof(float) * (static_cast<std::size_t>(block) * (d + 1) + static_cast<std::size_t>(kProxyTile) * d) +
         sizeof(double) * kProxyTile * block;
}

// One proxy pass over chunk blockIdx.x of (b, h) = (blockIdx.z, blockIdx.y); thread r is query row L - rows + r.
// Pass 0 writes the chunk's row maximum and exp-sum; pass 1 writes the chunk's keys' importance.
template <typename Element>
__global__ void proxy_pass_kernel(const PbsParams p, int pass) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int h = blockIdx.y, b = blockIdx.z, r = threadIdx.x, block = p.lengths.block;
  const int L = p.lengths.q(b), complete = (L / p.segment) * p.segment;
  if (L <= p.segment) return;  // dense fallback: no permutation
  const int rows = min(block, L), j0 = static_cast<int>(blockIdx.x) * kProxyChunk;
  const int j_end = min(j0 + kProxyChunk, complete);
  double* partial = p.partial + ((static_cast<std::int64_t>(b) * p.heads_q + h) * p.chunks + blockIdx.x) * block * 2;
  if (j0 >= complete) {
    if (pass == 0 && r < rows) {
      partial[r * 2] = -INFINITY;
      partial[r * 2 + 1] = 0.0;
    }
    return;
  }
  const int d = p.d, hk = h / (p.heads_q / p.heads_kv);
  float* qs = reinterpret_cast<float*>(smem);  // [rows][d + 1]
  float* ks = qs + static_cast<std::size_t>(block) * (d + 1);  // [kProxyTile][d]
  double* terms = reinterpret_cast<double*>(ks + kProxyTile * d);  // [kProxyTile][block]
  const auto* q = static_cast<const Element*>(p.q) + b * p.q_batch + static_cast<std::int64_t>(p.lengths.q_start(b)) * p.q_token + h * p.q_head;
  const auto* k = static_cast<const Element*>(p.k) + b * p.k_batch + static_cast<std::int64_t>(p.lengths.k_start(b)) * p.k_token + hk * p.k_head;
  for (int i = threadIdx.x; i < rows * d; i += blockDim.x)
    qs[(i / d) * (d + 1) + i % d] = to_float(q[static_cast<std::int64_t>(L - rows + i / d) * p.q_token + i % d]);
  const double scale = 1.0 / sqrt(static_cast<double>(d));
  double m = -INFINITY, z = 0.0;
  if (pass == 1 && r < rows) {  // merge the chunks' statistics of this row (chunk order)
    const double* row = p.partial + (static_cast<std::int64_t>(b) * p.heads_q + h) * p.chunks * block * 2 + r * 2;
    for (int c = 0; c * kProxyChunk < complete; ++c) m = fmax(m, row[c * block * 2]);
    for (int c = 0; c * kProxyChunk < complete; ++c) z += row[c * block * 2 + 1] * exp(row[c * block * 2] - m);
  }
  for (int t0 = j0; t0 < j_end; t0 += kProxyTile) {
    const int n = min(kProxyTile, j_end - t0);
    __syncthreads();
    for (int i = threadIdx.x; i < n * d; i += blockDim.x)
      ks[i] = to_float(k[static_cast<std::int64_t>(t0 + i / d) * p.k_token + i % d]);
    __syncthreads();
    if (r < rows) {
      for (int t8 = 0; t8 < n; t8 += 8) {  // 8 keys at a time: one query load feeds 8 products
        double dot[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int c = 0; c < d; ++c) {
          const double qv = qs[r * (d + 1) + c];
#pragma unroll
          for (int i = 0; i < 8; ++i) dot[i] += qv * ks[(t8 + i) * d + c];
        }
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          if (t8 + i >= n) break;
          const double logit = dot[i] * scale;
          if (pass == 0) {
            if (logit > m) {
              z = m == -INFINITY ? 0.0 : z * exp(m - logit);
              m = logit;
            }
            z += exp(logit - m);
          } else {
            terms[(t8 + i) * block + r] = exp(logit - m) / z / static_cast<double>(rows);
          }
        }
      }
    }
    if (pass == 1) {
      __syncthreads();
      if (threadIdx.x < n) {  // each key's sum over the rows, in row order
        double s = 0.0;
        for (int i = 0; i < rows; ++i) s += terms[threadIdx.x * block + i];
        p.importance[(static_cast<std::int64_t>(b) * p.heads_q + h) * p.width + t0 + threadIdx.x] = s;
      }
    }
  }
  if (pass == 0 && r < rows) {
    partial[r * 2] = m;
    partial[r * 2 + 1] = z;
  }
}

// Positions [g S, (g + 1) S) of (b, h)'s key order, g = blockIdx.x, one thread per position: a complete
// segment of a sequence longer than S is ranked by importance; anything else keeps the identity (zeros past
// the sequence's end).
__global__ void segment_rank_kernel(const PbsParams p) {
  __shared__ double key[kMaxSegment];
  const int g = blockIdx.x, h = blockIdx.y, b = blockIdx.z, i = threadIdx.x, S = p.segment;
  const int L = p.lengths.q(b), complete = (L / S) * S, pos = g * S + i;
  const std::int64_t row = static_cast<std::int64_t>(b) * p.heads_q + h;
  std::int32_t* order = p.key_order + row * p.width;
  const bool ranked = L > S && (g + 1) * S <= complete;
  if (!ranked) {
    if (pos < p.width) order[pos] = pos < L ? pos : 0;
    return;
  }
  key[i] = p.importance[row * p.width + pos];
  __syncthreads();
  int rank = 0;
  for (int j = 0; j < S; ++j) rank += key[j] > key[i] || (key[j] == key[i] && j < i);
  order[g * S + rank] = pos;
}

}  // namespace sparsefill::cuda::select
