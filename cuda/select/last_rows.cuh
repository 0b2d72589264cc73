// The attention of a sequence's last query rows over its keys, on the GPU: the softmax statistics of
// MInference's and FlexPrefill's estimates (minference_kernels.cuh, flexprefill_kernels.cuh, line_sums.cuh).
// PBS-Attn's proxy (pbs_importance.cuh) shares the parameters and the chunking of the keys.
//
// Logits are bf16/fp16 tensor-core products with fp32 accumulation (mma m16n8k16, f32_mma.cuh: every product
// exact, the sum of a logit's d products rounded in fp32, as the stride selectors' logits), and each
// probability's numerator is an fp32-precision exponential (exp_nonpositive_fp32), so a line sum or a row's
// exp-sum agrees with the CPU's fp64 one to ~1e-6, relative: a selection can differ from the CPU's only where
// two lines or blocks tie to that rounding at a cut, or a mass at a threshold. One pass over key chunks keeps
// each chunk's row maximum and exp-sum (fp64 sums); merged_row_stats merges them per row. A CTA holds the
// rows in whole warps, 32 rows (2 mma row tiles of 16) a warp; per step of 32 staged keys (4 column tiles of
// 8) each lane ends with 4 rows x 8 keys of logits and folds them into its rows' running statistics (the 4
// lanes of a row merge at the end).
#pragma once
#include <cstdint>

#include "common/dynamic_shared.cuh"
#include "select/f32_mma.cuh"
#include "select/fp64_exp.cuh"
#include "select/sequence_lengths.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kProxyChunk = 1024;  // keys per CTA of the last-rows passes (and of PBS's proxy)
inline constexpr int kProxyTile = 32;     // keys staged in shared memory per step (4 mma column tiles)
// Threads of the statistics pass at most: MInference's last_q and FlexPrefill's block are at most 128 rows.
inline constexpr int kLastRowsMaxThreads = 128;
inline constexpr int kProxyRowPad = 8;  // elements after each staged query or key row (conflict-free loads)

struct LastRowsParams : QkTensors {
  int batch, heads_q, heads_kv, d, width;  // width: max_seqlen_k, the key_order row length
  Lengths lengths;
  int rows;      // the last `rows` queries (PBS: the block B; MInference: last_q)
  double scale;  // logit scale (PBS's proxy: in log2 units)
  int causal;    // MInference: key j visible to query i iff j <= i + seqlen_k - seqlen_q; PBS: no mask
  int segment;   // PBS: keys of complete segments only, sequences of one segment skipped; 0: every key
  double* partial;              // [batch, heads_q, chunks, rows, 2]: each chunk's row max and exp-sum (PBS: base 2)
  int chunks;                   // ceil(width / kProxyChunk)
  double* importance;           // [batch, heads_q, width]
  std::int32_t* key_order;      // [batch, heads_q, width] out
};


// Threads of the statistics pass over `rows` query rows: whole warps of 32 rows each.
inline int last_rows_threads(int rows) { return (rows + 31) / 32 * 32; }

// Shared memory of the statistics pass: the query rows (padded to whole warps) and one key tile, both in the
// input dtype, rows of d + kProxyRowPad elements.
template <typename Element>
std::size_t last_rows_smem_bytes(int rows, int d) {
  const std::size_t threads = static_cast<std::size_t>(last_rows_threads(rows));
  return sizeof(Element) * (threads + kProxyTile) * (d + kProxyRowPad);
}

// The keys the last rows attend: PBS's complete segments (nothing for a sequence of one segment), else all.
__device__ inline int attended_keys(const LastRowsParams& p, int b) {
  const int L = p.lengths.k(b);
  if (p.segment == 0) return L;
  return L > p.segment ? (L / p.segment) * p.segment : 0;
}

// Row r's merged softmax statistics (maximum, exp-sum) from the chunks' partials, in chunk order; base2: the
// partials are in log2 units (PBS's proxy), else natural.
__device__ inline void merged_row_stats(const LastRowsParams& p, int b, int h, int r, int keys, bool base2, double& m,
                                        double& z) {
  const double* row = p.partial + (static_cast<std::int64_t>(b) * p.heads_q + h) * p.chunks * p.rows * 2 + r * 2;
  m = -INFINITY;
  z = 0.0;
  for (int c = 0; c * kProxyChunk < keys; ++c) m = fmax(m, row[c * p.rows * 2]);
  for (int c = 0; c * kProxyChunk < keys; ++c)
    if (row[c * p.rows * 2] != -INFINITY) {
      const double shift = row[c * p.rows * 2] - m;
      z += row[c * p.rows * 2 + 1] * (base2 ? exp2(shift) : exp(shift));
    }
}

// The first token of query head h (key head hk) of sequence b, in the input dtype.
template <typename Element>
__device__ const Element* head_queries(const LastRowsParams& p, int b, int h) {
  return static_cast<const Element*>(p.q) + b * p.q_batch +
         static_cast<std::int64_t>(p.lengths.q_start(b)) * p.q_token + h * p.q_head;
}
template <typename Element>
__device__ const Element* head_keys(const LastRowsParams& p, int b, int hk) {
  return static_cast<const Element*>(p.k) + b * p.k_batch +
         static_cast<std::int64_t>(p.lengths.k_start(b)) * p.k_token + hk * p.k_head;
}

// Copies rows [0, count) of d elements at `in` (rows `in_stride` elements apart) into shared rows of
// `out_stride` elements at `out`, and zeros rows [count, capacity): 16 bytes a step when the rows and strides
// allow it, else an element.
template <typename Element>
__device__ void stage_rows(const Element* in, std::int64_t in_stride, int count, int capacity, int d,
                           Element* out, int out_stride) {
  constexpr int kChunk = 16 / sizeof(Element);
  struct alignas(16) Chunk {
    unsigned v[4];
  };
  if (d % kChunk == 0 && in_stride % kChunk == 0 && out_stride % kChunk == 0 &&
      reinterpret_cast<std::uintptr_t>(in) % 16 == 0) {
    const int per_row = d / kChunk;
    for (int i = threadIdx.x; i < capacity * per_row; i += blockDim.x) {
      const int row = i / per_row, c = i % per_row * kChunk;
      *reinterpret_cast<Chunk*>(out + row * out_stride + c) =
          row < count ? *reinterpret_cast<const Chunk*>(in + row * in_stride + c) : Chunk{};
    }
    return;
  }
  for (int i = threadIdx.x; i < capacity * d; i += blockDim.x) {
    const int row = i / d, c = i % d;
    out[row * out_stride + c] = row < count ? in[row * in_stride + c] : Element(0.0f);
  }
}

// One warp's logits (unscaled, fp32) over d dims: staged query rows row0 + 8 mt + l / 4 (mt < 4) against
// staged keys key0 + 8 nt + l / 4 (nt < kKeyTiles), both in the input dtype, as mma fragments: acc[mt][nt][e]
// is row row0 + 8 mt + l / 4, key key0 + 8 nt + 2 (l % 4) + e (mt = 2 m + 1 the bottom half of row tile m).
template <typename Element, int kKeyTiles>
__device__ void tile_logits(const Element* qs, int q_stride, int row0, const Element* ks, int k_stride,
                            int key0, int d, float (&acc)[4][kKeyTiles][2]) {
  const int lane = threadIdx.x % 32, g = lane / 4, pair = 2 * (lane % 4);
  for (int mt = 0; mt < 4; ++mt)
    for (int nt = 0; nt < kKeyTiles; ++nt) acc[mt][nt][0] = acc[mt][nt][1] = 0.0f;
  using Pair = decltype(load_pair(qs, 0, d));
  for (int c0 = 0; c0 < d; c0 += 16) {
    const int c = c0 + pair;  // the lane's first pair of the 16-dim step
    Pair a[2][4], b[kKeyTiles][2];
#pragma unroll
    for (int m = 0; m < 2; ++m) {
      const Element* top = qs + (row0 + 16 * m + g) * q_stride;
      const Element* bottom = top + 8 * q_stride;
      a[m][0] = load_pair(top, c, d);
      a[m][1] = load_pair(bottom, c, d);
      a[m][2] = load_pair(top, c + 8, d);
      a[m][3] = load_pair(bottom, c + 8, d);
    }
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt) {
      const Element* key = ks + (key0 + 8 * nt + g) * k_stride;
      b[nt][0] = load_pair(key, c, d);
      b[nt][1] = load_pair(key, c + 8, d);
    }
#pragma unroll
    for (int m = 0; m < 2; ++m)
#pragma unroll
      for (int nt = 0; nt < kKeyTiles; ++nt)
        mma_16x8x16<Element>(acc[2 * m][nt], acc[2 * m + 1][nt], a[m], b[nt]);
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

// The statistics pass over key chunk blockIdx.x of (b, h) = (blockIdx.z, blockIdx.y), last_rows_threads(p.rows)
// threads; row r is query row lq - rows + r: the chunk's row maximum and exp-sum over the keys each row sees.
template <typename Element>
__global__ void __launch_bounds__(kLastRowsMaxThreads, 4) last_rows_stats_kernel(const LastRowsParams p) {
  unsigned char* smem = dynamic_shared<unsigned char>();
  const int h = blockIdx.y, b = blockIdx.z;
  const int lq = p.lengths.q(b), keys = attended_keys(p, b);
  if (keys == 0) return;
  const int rows = min(p.rows, lq), j0 = static_cast<int>(blockIdx.x) * kProxyChunk;
  const int j_end = min(j0 + kProxyChunk, keys), threads = static_cast<int>(blockDim.x);
  double* partial = p.partial + ((static_cast<std::int64_t>(b) * p.heads_q + h) * p.chunks + blockIdx.x) * p.rows * 2;
  if (j0 >= keys) {
    for (int r = threadIdx.x; r < rows; r += threads) {
      partial[r * 2] = -INFINITY;
      partial[r * 2 + 1] = 0.0;
    }
    return;
  }
  const int d = p.d, hk = h / (p.heads_q / p.heads_kv), stride = d + kProxyRowPad;
  auto* qs = reinterpret_cast<Element*>(smem);  // [threads][stride], rows past `rows` zero
  Element* ks = qs + threads * stride;          // [kProxyTile][stride]
  const Element* k = head_keys<Element>(p, b, hk);
  // The last `rows` queries, then zero rows up to whole warps (the mma tiles read groups of 32 rows).
  stage_rows(head_queries<Element>(p, b, h) + static_cast<std::int64_t>(lq - rows) * p.q_token, p.q_token,
             rows, threads, d, qs, stride);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, frag_mn = lane / 4, frag_k = lane % 4;
  int row[4], last[4];  // this lane's rows (one per row tile) and the last key each sees (inclusive)
  double m[4], z[4];
#pragma unroll
  for (int t = 0; t < 4; ++t) {
    row[t] = 32 * warp + 8 * t + frag_mn;
    last[t] = p.causal ? min(keys - 1, lq - rows + row[t] + p.lengths.k(b) - lq) : keys - 1;
    m[t] = -INFINITY;
    z[t] = 0.0;
  }
  for (int t0 = j0; t0 < j_end; t0 += kProxyTile) {
    const int n = min(kProxyTile, j_end - t0);
    __syncthreads();
    stage_rows(k + static_cast<std::int64_t>(t0) * p.k_token, p.k_token, n, kProxyTile, d, ks, stride);
    __syncthreads();
    float acc[4][4][2];  // [row tile][column tile][element]
    tile_logits<Element, 4>(qs, stride, 32 * warp, ks, stride, 0, d, acc);
    // Per row: the tile's maximum over the keys the row sees, the running sum rescaled to it once, then
    // the tile's exponentials added (no branch per key).
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) {
      double top = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < 4; ++nt)
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          const int key = 8 * nt + 2 * frag_k + i;
          if (key < n && t0 + key <= last[mt]) top = fmax(top, acc[mt][nt][i] * p.scale);
        }
      if (row[mt] >= rows || top == -INFINITY) continue;
      const double next = fmax(m[mt], top);
      double sum = m[mt] == -INFINITY ? 0.0 : z[mt] * exp_nonpositive(m[mt] - next);
#pragma unroll
      for (int nt = 0; nt < 4; ++nt)
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          const int key = 8 * nt + 2 * frag_k + i;
          const double e = exp_nonpositive_fp32(fmin(acc[mt][nt][i] * p.scale - next, 0.0));
          sum += key < n && t0 + key <= last[mt] ? e : 0.0;
        }
      m[mt] = next;
      z[mt] = sum;
    }
  }
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

}  // namespace sparsefill::cuda::select
