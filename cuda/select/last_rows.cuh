// The attention of a sequence's last query rows over its keys, on the GPU: PBS-Attn's global-importance proxy
// (algorithms.md §3.3 step 1, CPU: src/select/pbs_selector.cpp) and MInference's estimate (minference_kernels.cuh).
//
// PBS's proxy: s[j] = mean over the last B queries r of softmax_j(q_r . k_j / sqrt(d)), over the keys
// of complete segments, no causal mask, per query head. Logits are fp64 sums over the dims in the CPU's order
// (fused multiply-adds: fp64 rounding apart); the softmax runs in two passes over key chunks: the first keeps
// each chunk's row maximum and exp-sum, the second merges them per row and sums each key's probabilities over
// the rows in row order, as the CPU does. The softmax normaliser sums in another order (fp64 rounding).
#pragma once
#include <cstdint>

#include "common/dynamic_shared.cuh"
#include "select/sequence_lengths.cuh"
#include "select/stride_scoring.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kProxyChunk = 1024;  // keys per CTA of the proxy passes
inline constexpr int kProxyTile = 32;     // keys staged in shared memory per step

struct LastRowsParams : QkTensors {
  int batch, heads_q, heads_kv, d, width;  // width: max_seqlen_k, the key_order row length
  Lengths lengths;
  int rows;      // the last `rows` queries (PBS: the block B; MInference: last_q)
  double scale;  // logit scale
  int causal;    // MInference: key j visible to query i iff j <= i + seqlen_k - seqlen_q; PBS: no mask
  int segment;   // PBS: keys of complete segments only, sequences of one segment skipped; 0: every key
  double* partial;              // [batch, heads_q, chunks, rows, 2]: each chunk's row max and exp-sum
  int chunks;                   // ceil(width / kProxyChunk)
  double* importance;           // [batch, heads_q, width]
  std::int32_t* key_order;      // [batch, heads_q, width] out
};

inline constexpr int kRowPad = 2;  // elements after each staged query row (2-byte elements: conflict-free rows)

// Shared memory of a pass: the query rows (input dtype, padded), one key tile (fp32) and, in pass 1, its terms
// (fp64). Pass 0 needs less, so more CTAs fit on an SM.
inline std::size_t proxy_smem_bytes(int rows, int d, int pass) {
  return sizeof(std::uint16_t) * static_cast<std::size_t>(rows) * (d + kRowPad) +
         sizeof(float) * static_cast<std::size_t>(kProxyTile) * d + (pass == 1 ? sizeof(double) * kProxyTile * rows : 0);
}

// The keys the last rows attend: PBS's complete segments (nothing for a sequence of one segment), else all.
__device__ inline int attended_keys(const LastRowsParams& p, int b) {
  const int L = p.lengths.k(b);
  if (p.segment == 0) return L;
  return L > p.segment ? (L / p.segment) * p.segment : 0;
}

// Row r's merged softmax statistics (maximum, exp-sum) from the chunks' partials, in chunk order.
__device__ inline void merged_row_stats(const LastRowsParams& p, int b, int h, int r, int keys, double& m, double& z) {
  const double* row = p.partial + (static_cast<std::int64_t>(b) * p.heads_q + h) * p.chunks * p.rows * 2 + r * 2;
  m = -INFINITY;
  z = 0.0;
  for (int c = 0; c * kProxyChunk < keys; ++c) m = fmax(m, row[c * p.rows * 2]);
  for (int c = 0; c * kProxyChunk < keys; ++c)
    if (row[c * p.rows * 2] != -INFINITY) z += row[c * p.rows * 2 + 1] * exp(row[c * p.rows * 2] - m);
}

// Loads the last `rows` queries of (b, h) into shared memory, rows of stride d + kRowPad elements.
template <typename Element>
__device__ void load_last_queries(const LastRowsParams& p, int b, int h, int rows, Element* qs) {
  const int lq = p.lengths.q(b), d = p.d;
  const auto* q = static_cast<const Element*>(p.q) + b * p.q_batch +
                  static_cast<std::int64_t>(p.lengths.q_start(b)) * p.q_token + h * p.q_head;
  for (int i = threadIdx.x; i < rows * d; i += blockDim.x)
    qs[(i / d) * (d + kRowPad) + i % d] = q[static_cast<std::int64_t>(lq - rows + i / d) * p.q_token + i % d];
}

// One pass over key chunk blockIdx.x of (b, h) = (blockIdx.z, blockIdx.y); thread r is query row lq - rows + r.
// Pass 0 writes the chunk's row maximum and exp-sum over the keys each row sees; pass 1 (PBS) writes the
// chunk's keys' importance.
template <typename Element>
__global__ void proxy_pass_kernel(const LastRowsParams p, int pass) {
  unsigned char* smem = dynamic_shared<unsigned char>();
  const int h = blockIdx.y, b = blockIdx.z, r = threadIdx.x;
  const int lq = p.lengths.q(b), keys = attended_keys(p, b);
  if (keys == 0) return;  // PBS's dense fallback: no permutation
  const int rows = min(p.rows, lq), j0 = static_cast<int>(blockIdx.x) * kProxyChunk;
  const int j_end = min(j0 + kProxyChunk, keys);
  // The last key row r sees (inclusive).
  const int last = p.causal ? min(keys - 1, lq - rows + r + p.lengths.k(b) - lq) : keys - 1;
  double* partial = p.partial + ((static_cast<std::int64_t>(b) * p.heads_q + h) * p.chunks + blockIdx.x) * p.rows * 2;
  if (j0 >= keys) {
    if (pass == 0 && r < rows) {
      partial[r * 2] = -INFINITY;
      partial[r * 2 + 1] = 0.0;
    }
    return;
  }
  const int d = p.d, hk = h / (p.heads_q / p.heads_kv);
  auto* qs = reinterpret_cast<Element*>(smem);  // [rows][d + kRowPad]
  float* ks = reinterpret_cast<float*>(smem + sizeof(Element) * static_cast<std::size_t>(p.rows) * (d + kRowPad));  // [kProxyTile][d]
  double* terms = reinterpret_cast<double*>(ks + kProxyTile * d);  // pass 1: [kProxyTile][rows]
  const auto* k = static_cast<const Element*>(p.k) + b * p.k_batch + static_cast<std::int64_t>(p.lengths.k_start(b)) * p.k_token + hk * p.k_head;
  load_last_queries<Element>(p, b, h, rows, qs);
  double m = -INFINITY, z = 0.0;
  if (pass == 1 && r < rows) merged_row_stats(p, b, h, r, keys, m, z);
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
          const double qv = to_float(qs[r * (d + kRowPad) + c]);
#pragma unroll
          for (int i = 0; i < 8; ++i) dot[i] += qv * ks[(t8 + i) * d + c];
        }
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          if (t8 + i >= n) break;
          const bool seen = t0 + t8 + i <= last;
          const double logit = dot[i] * p.scale;
          if (pass == 0 && seen) {
            if (logit > m) {
              z = m == -INFINITY ? 0.0 : z * exp(m - logit);
              m = logit;
            }
            z += exp(logit - m);
          } else if (pass == 1) {
            terms[(t8 + i) * p.rows + r] = seen ? exp(logit - m) / z / static_cast<double>(rows) : 0.0;
          }
        }
      }
    }
    if (pass == 1) {
      __syncthreads();
      if (threadIdx.x < n) {  // each key's sum over the rows, in row order
        double s = 0.0;
        for (int i = 0; i < rows; ++i) s += terms[threadIdx.x * p.rows + i];
        p.importance[(static_cast<std::int64_t>(b) * p.heads_q + h) * p.width + t0 + threadIdx.x] = s;
      }
    }
  }
  if (pass == 0 && r < rows) {
    partial[r * 2] = m;
    partial[r * 2 + 1] = z;
  }
}

}  // namespace sparsefill::cuda::select
