// The attention of a sequence's last query rows over its keys, on the GPU: PBS-Attn's global-importance proxy
// (algorithms.md §3.3 step 1, CPU: src/select/pbs_selector.cpp) and MInference's estimate (minference_kernels.cuh).
//
// PBS's proxy: s[j] = mean over the last B queries r of softmax_j(q_r . k_j / sqrt(d)), over the keys
// of complete segments, no causal mask, per query head. Logits are fp64 tensor-core products (mma m8n8k4: the
// bf16/fp16 inputs are exact fp64 operands, so a logit is the CPU's fp64 dot product up to the order of its
// roundings); the softmax runs in two passes over key chunks: the first keeps each chunk's row maximum and
// exp-sum, the second merges them per row and sums each key's probabilities over the rows in row order, as the
// CPU does. The softmax normaliser sums in another order (fp64 rounding).
//
// A pass's CTA holds the rows in whole warps, 32 rows (4 mma row tiles) a warp; per step of 32 staged keys
// (4 column tiles) each lane ends with 4 rows x 8 keys of logits, folds them into its rows' running statistics
// (pass 0; the 4 lanes of a row merge at the end) or writes their terms for the per-key sums (pass 1).
#pragma once
#include <cstdint>

#include "common/dynamic_shared.cuh"
#include "select/element_convert.cuh"
#include "select/fp64_mma.cuh"
#include "select/sequence_lengths.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kProxyChunk = 1024;  // keys per CTA of the proxy passes
inline constexpr int kProxyTile = 32;     // keys staged in shared memory per step (4 mma column tiles)
inline constexpr int kProxyRowPad = 8;    // elements after each staged query row (conflict-free mma A loads)
inline constexpr int kProxyKeyPad = 4;    // floats after each staged key (conflict-free mma B loads)

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


// Threads of a proxy pass over `rows` query rows: whole warps of 32 rows each.
inline int proxy_threads(int rows) { return (rows + 31) / 32 * 32; }

// Shared memory of a pass: the query rows (input dtype, padded to whole warps), one key tile (fp32) and, in
// pass 1, its terms (fp64). Pass 0 needs less, so more CTAs fit on an SM.
template <typename Element>
std::size_t proxy_smem_bytes(int rows, int d, int pass) {
  const std::size_t threads = static_cast<std::size_t>(proxy_threads(rows));
  return sizeof(Element) * threads * (d + kProxyRowPad) + sizeof(float) * kProxyTile * (d + kProxyKeyPad) +
         (pass == 1 ? sizeof(double) * kProxyTile * threads : 0);
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

// Loads the last `rows` queries of (b, h) into shared memory, rows of `stride` elements, and zeroes the staged
// rows after them up to `capacity` (the mma tiles read whole groups of 32 rows).
template <typename Element>
__device__ void load_last_queries(const LastRowsParams& p, int b, int h, int rows, int capacity, int stride,
                                  Element* qs) {
  const int lq = p.lengths.q(b), d = p.d;
  const auto* q = static_cast<const Element*>(p.q) + b * p.q_batch +
                  static_cast<std::int64_t>(p.lengths.q_start(b)) * p.q_token + h * p.q_head;
  for (int i = threadIdx.x; i < rows * d; i += blockDim.x)
    qs[(i / d) * stride + i % d] = q[static_cast<std::int64_t>(lq - rows + i / d) * p.q_token + i % d];
  for (int i = rows * stride + threadIdx.x; i < capacity * stride; i += blockDim.x) qs[i] = Element(0.0f);
}

// Stages keys [t0, t0 + n) of one KV head (`k` at its first token) as fp32 rows of `stride` floats; the rest
// of the kProxyTile rows are zero.
template <typename Element>
__device__ void stage_key_tile(const Element* k, std::int64_t k_token, int t0, int n, int d, int stride, float* ks) {
  for (int i = threadIdx.x; i < kProxyTile * d; i += blockDim.x) {
    const int key = i / d;
    ks[key * stride + i % d] = key < n ? to_float(k[static_cast<std::int64_t>(t0 + key) * k_token + i % d]) : 0.0f;
  }
}

// One warp's fp64 logits (unscaled) over d dims: staged query rows row0 + 8 mt + l / 4 (mt < 4) against staged
// keys key0 + 8 nt + l / 4 (nt < kKeyTiles), as mma fragments: acc[mt][nt][e] is row row0 + 8 mt + l / 4, key
// key0 + 8 nt + 2 (l % 4) + e.
template <typename Element, int kKeyTiles>
__device__ void tile_logits(const Element* qs, int q_stride, int row0, const float* ks, int k_stride, int key0, int d,
                            double (&acc)[4][kKeyTiles][2]) {
  const int lane = threadIdx.x % 32, frag_mn = lane / 4, frag_k = lane % 4;
  for (int mt = 0; mt < 4; ++mt)
    for (int nt = 0; nt < kKeyTiles; ++nt) acc[mt][nt][0] = acc[mt][nt][1] = 0.0;
  for (int c0 = 0; c0 < d; c0 += 4) {
    const int c = c0 + frag_k;
    double a[4], bk[kKeyTiles];
#pragma unroll
    for (int t = 0; t < 4; ++t) a[t] = c < d ? static_cast<double>(to_float(qs[(row0 + 8 * t + frag_mn) * q_stride + c])) : 0.0;
#pragma unroll
    for (int t = 0; t < kKeyTiles; ++t) bk[t] = c < d ? static_cast<double>(ks[(key0 + 8 * t + frag_mn) * k_stride + c]) : 0.0;
#pragma unroll
    for (int mt = 0; mt < 4; ++mt)
#pragma unroll
      for (int nt = 0; nt < kKeyTiles; ++nt) mma_m8n8k4(acc[mt][nt], a[mt], bk[nt]);
  }
}

// Merges running softmax statistics (maximum, exp-sum) of the same row.
__device__ inline void merge_stats(double& m, double& z, double m2, double z2) {
  if (m2 == -INFINITY) return;
  if (m == -INFINITY) {
    m = m2;
    z = z2;
    return;
  }
  const double top = fmax(m, m2);
  z = z * exp(m - top) + z2 * exp(m2 - top);
  m = top;
}

// One pass over key chunk blockIdx.x of (b, h) = (blockIdx.z, blockIdx.y), proxy_threads(p.rows) threads; row
// r is query row lq - rows + r. Pass 0 writes the chunk's row maximum and exp-sum over the keys each row sees;
// pass 1 (PBS) writes the chunk's keys' importance.
template <typename Element>
__global__ void proxy_pass_kernel(const LastRowsParams p, int pass) {
  unsigned char* smem = dynamic_shared<unsigned char>();
  const int h = blockIdx.y, b = blockIdx.z;
  const int lq = p.lengths.q(b), keys = attended_keys(p, b);
  if (keys == 0) return;  // PBS's dense fallback: no permutation
  const int rows = min(p.rows, lq), j0 = static_cast<int>(blockIdx.x) * kProxyChunk;
  const int j_end = min(j0 + kProxyChunk, keys), threads = static_cast<int>(blockDim.x);
  double* partial = p.partial + ((static_cast<std::int64_t>(b) * p.heads_q + h) * p.chunks + blockIdx.x) * p.rows * 2;
  if (j0 >= keys) {
    for (int r = threadIdx.x; pass == 0 && r < rows; r += threads) {
      partial[r * 2] = -INFINITY;
      partial[r * 2 + 1] = 0.0;
    }
    return;
  }
  const int d = p.d, hk = h / (p.heads_q / p.heads_kv);
  const int q_stride = d + kProxyRowPad, k_stride = d + kProxyKeyPad;
  auto* qs = reinterpret_cast<Element*>(smem);  // [threads][q_stride], rows past `rows` zero
  float* ks = reinterpret_cast<float*>(smem + sizeof(Element) * static_cast<std::size_t>(threads) * q_stride);  // [kProxyTile][k_stride]
  double* terms = reinterpret_cast<double*>(ks + kProxyTile * k_stride);  // pass 1: [kProxyTile][threads]
  const auto* k = static_cast<const Element*>(p.k) + b * p.k_batch + static_cast<std::int64_t>(p.lengths.k_start(b)) * p.k_token + hk * p.k_head;
  load_last_queries<Element>(p, b, h, rows, threads, q_stride, qs);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, frag_mn = lane / 4, frag_k = lane % 4;
  int row[4], last[4];  // this lane's rows (one per row tile) and the last key each sees (inclusive)
  double m[4], z[4];
#pragma unroll
  for (int t = 0; t < 4; ++t) {
    row[t] = 32 * warp + 8 * t + frag_mn;
    last[t] = p.causal ? min(keys - 1, lq - rows + row[t] + p.lengths.k(b) - lq) : keys - 1;
    m[t] = -INFINITY;
    z[t] = 0.0;
    if (pass == 1 && row[t] < rows) merged_row_stats(p, b, h, row[t], keys, m[t], z[t]);
  }
  for (int t0 = j0; t0 < j_end; t0 += kProxyTile) {
    const int n = min(kProxyTile, j_end - t0);
    __syncthreads();
    stage_key_tile(k, p.k_token, t0, n, d, k_stride, ks);
    __syncthreads();
    double acc[4][4][2];  // [row tile][column tile][element]
    tile_logits<Element, 4>(qs, q_stride, 32 * warp, ks, k_stride, 0, d, acc);
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) {
      if (row[mt] >= rows) continue;
#pragma unroll
      for (int nt = 0; nt < 4; ++nt)
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          const int key = 8 * nt + 2 * frag_k + i;
          if (key >= n) continue;
          const bool seen = t0 + key <= last[mt];
          const double logit = acc[mt][nt][i] * p.scale;
          if (pass == 0 && seen) {
            if (logit > m[mt]) {
              z[mt] = m[mt] == -INFINITY ? 0.0 : z[mt] * exp(m[mt] - logit);
              m[mt] = logit;
            }
            z[mt] += exp(logit - m[mt]);
          } else if (pass == 1) {
            terms[key * threads + row[mt]] = seen ? exp(logit - m[mt]) / z[mt] / static_cast<double>(rows) : 0.0;
          }
        }
    }
    if (pass == 1) {
      __syncthreads();
      if (threadIdx.x < n) {  // each key's sum over the rows, in row order
        double s = 0.0;
        for (int i = 0; i < rows; ++i) s += terms[threadIdx.x * threads + i];
        p.importance[(static_cast<std::int64_t>(b) * p.heads_q + h) * p.width + t0 + threadIdx.x] = s;
      }
    }
  }
  if (pass == 0) {
#pragma unroll
    for (int t = 0; t < 4; ++t) {
      for (int offset = 1; offset < 4; offset *= 2) {  // the 4 lanes of a row
        const double m2 = __shfl_xor_sync(0xffffffffu, m[t], offset), z2 = __shfl_xor_sync(0xffffffffu, z[t], offset);
        merge_stats(m[t], z[t], m2, z2);
      }
      if (frag_k == 0 && row[t] < rows) {
        partial[row[t] * 2] = m[t];
        partial[row[t] * 2 + 1] = z[t];
      }
    }
  }
}

}  // namespace sparsefill::cuda::select
