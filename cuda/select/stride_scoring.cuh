// Kernels of the stride selectors on the GPU: RRAttention and XAttention (design note).
//
// Both score query strides against key strides of S tokens, take a softmax over the allowed key strides of
// each query stride, and sum the probabilities into (B/S) x (B/S) tiles, one tile per block pair:
//   RRAttention: row i is one sampled query q[iS + offset(h)], column j the stride-summed key sum_t k[jS + t]
//                (d dims);
//   XAttention:  row i is [q[iS + S-1], ..., q[iS]] and column j [k[jS], ..., k[jS + S-1]] (S d dims), whose
//                dot product is the antidiagonal sum of the S x S sub-block.
// Scale 1 / (S sqrt(d)) in both. One warp scores the R = B/S rows of one (sequence, query head, query block
// u) against every key stride its rows may see, keeps the block row in shared memory, applies the method's
// rule (stride_rules.cuh) and writes the mask row. A CTA's 4 warps take 4 rows of one KV head (the GQA
// group's heads at one u, or consecutive u), so they read the same keys close in time and share them through
// L1. Logits are tensor-core products (mma.sync m16n8k16 here, wgmma in the tiled kernel,
// stride_tile_kernel.cuh; fp32 accumulation): the inputs' bf16/fp16 values are exact operands; RRAttention's
// key sums (exact in fp64 on the CPU) enter as a hi + lo pair of the input dtype, so a logit is the CPU's up
// to fp32 rounding (~1e-6 relative). Softmax statistics take a first pass over the row (max and sum), the
// probabilities a second. The dot products' reduction order and operand loads: mma_tiles.cuh.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "select/element_convert.cuh"
#include "select/mma_tiles.cuh"
#include "select/ranked_cut.cuh"
#include "select/sequence_lengths.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kStrideWarps = 4;

struct StrideParams : QkTensors {
  const void* key_hi;  // RRAttention: stride key sums [slot - slot_begin][strides_max][d], hi and lo parts
  const void* key_lo;  // null with key_parts 1
  int key_parts;       // RRAttention: 2 (exact sums as hi + lo) or 1 (sums rounded to the input dtype)
  int slot_begin, slot_end;  // the (sequence * heads_kv + kv head) range of this launch
  int strides_max;           // key strides per slot in the key-sum layout
  int batch, heads_q, heads_kv, d, nq, nk;  // nq, nk: of the longest sequence (the mask layout)
  Lengths lengths;
  int stride, causal;
  int rr;             // 1: RRAttention, 0: XAttention
  int mirrored;       // RRAttention's offset: S - 1 - (h mod S) instead of h mod S
  int rule_v2;        // RRAttention v2 (T1, then OR column 0 and the diagonal); else T3
  int t3_clean;       // T3 clean instead of the reference's behaviour
  double tau;
  int keep_sink, keep_last_row, keep_recent;
  int chunk_tokens;  // XAttention chunk (0: the reference formula of each sequence's key length)
  std::int32_t* kv_num_blocks;  // [batch, heads_q, nq]
  std::int32_t* kv_indices;     // [batch, heads_q, nq, nk]
};

// RRAttention's key sums: k_hat[j] = sum_t k[jS + t] (fp64, token order, keys past the sequence absent), stored
// as hi = round(k_hat) (through fp32, as the CPU's rounded sums) and, unless lo is null, lo = round(k_hat - hi)
// in the input dtype. Grid (strides_max, slots), d threads.
template <typename Element>
__global__ void key_stride_sums_kernel(const StrideParams p, Element* hi, Element* lo) {
  const int j = blockIdx.x, slot = p.slot_begin + blockIdx.y, c = threadIdx.x;
  const int b = slot / p.heads_kv, g = slot % p.heads_kv;
  const int lk = p.lengths.k(b), start = p.lengths.k_start(b);
  const auto* k = static_cast<const Element*>(p.k) + b * p.k_batch + g * p.k_head;
  double sum = 0.0;
  for (int t = 0; t < p.stride; ++t) {
    const int token = j * p.stride + t;
    if (token < lk) sum += static_cast<double>(to_float(k[static_cast<std::int64_t>(start + token) * p.k_token + c]));
  }
  const Element h = from_float<Element>(static_cast<float>(sum));
  const std::int64_t at = (static_cast<std::int64_t>(blockIdx.y) * p.strides_max + j) * p.d + c;
  hi[at] = h;
  if (lo != nullptr) lo[at] = from_float<Element>(static_cast<float>(sum - static_cast<double>(to_float(h))));
}

// One warp's mask row: its sequence, heads and query block, and where its rows and columns live in memory.
struct StrideTile {
  int b, h, g, slot, u;
  int lq, lk, nq_b, nk_b, key_strides, rows, offset;
  std::int64_t q_base, k_base;  // element offsets of (sequence start, head)
  int dims;                     // reduction length: d (RR) or S d (XAttention)

  // RRAttention: row r's (sampled query's) 8 dims at kk (a multiple of 8) as one load.
  __device__ uint4 sampled_query_dims(const StrideParams& p, int r, int kk) const {
    const int token = (u * rows + r) * p.stride + offset;
    return load8(p.q, q_base + static_cast<std::int64_t>(token) * p.q_token + kk, r < rows && token < lq);
  }
  // The last key stride row r may attend (inclusive), -1 for a row that is padding or sees nothing.
  __device__ int row_limit(const StrideParams& p, int r) const {
    const int i = u * rows + r;
    const int last = key_strides - 1;
    if (p.rr) {
      const int token = i * p.stride + offset;
      if (token >= lq) return -1;
      if (!p.causal) return last;
      const int visible = token + lk - lq;  // key stride j is allowed iff j S <= visible
      return visible < 0 ? -1 : min(visible / p.stride, last);
    }
    if (i * p.stride >= lq) return -1;
    return p.causal ? min(i + (lk - lq) / p.stride, last) : last;
  }
};

inline constexpr int kMaxRegisterSteps = 8;  // RRAttention's query rows held in registers: d <= 256

// Logits of a 16-row tile (rows r0 + g and r0 + g + 8 of lane g = lane / 4) against 16 columns col0 .. col0 + 15
// (two mma n-tiles): acc[n][e] is row (e < 2 ? g : g + 8), column col0 + 8 n + 2 (lane % 4) + (e % 2).
// RRAttention's query rows come from registers (`held`, one fragment per 32-dim step), XAttention's are loaded
// (L1 serves the CTA's other warps). Consecutive mma.sync on one accumulator wait for each other, so each
// n-tile sums into 4 independent chains (RRAttention: hi/lo part x k-half; XAttention: step parity x k-half).
template <typename Element, bool kRR>
__device__ void tile_logits(const StrideParams& p, const StrideTile& t, int r0, int col0,
                            const RowFragment (&held)[kMaxRegisterSteps], float (&acc)[2][4]) {
  using Op = typename MmaOf<Element>::Op;
  const int lane = threadIdx.x % 32, g = lane / 4, q4 = lane % 4;
  float chain[2][4][4];
  zero_accumulators(chain);
  auto mma = [&](float (&c0)[4], float (&c1)[4], const RowFragment& a, const uint4& b) {
    Op::fma(c0[0], c0[1], c0[2], c0[3], a.lo.x, a.hi.x, a.lo.y, a.hi.y, b.x, b.y, c0[0], c0[1], c0[2], c0[3]);
    Op::fma(c1[0], c1[1], c1[2], c1[3], a.lo.z, a.hi.z, a.lo.w, a.hi.w, b.z, b.w, c1[0], c1[1], c1[2], c1[3]);
  };
  const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
  if constexpr (kRR) {
    const uint4* column[2][2];  // [n][part]: the key sums of column col0 + 8 n + g from this lane's dims
    bool present[2];
#pragma unroll
    for (int n = 0; n < 2; ++n) {
      const int j = col0 + 8 * n + g;
      present[n] = j < t.key_strides;
      const std::int64_t at = (static_cast<std::int64_t>(t.slot - p.slot_begin) * p.strides_max + j) * p.d + 8 * q4;
      column[n][0] = reinterpret_cast<const uint4*>(static_cast<const unsigned short*>(p.key_hi) + at);
      column[n][1] = reinterpret_cast<const uint4*>(static_cast<const unsigned short*>(p.key_lo) + at);
    }
#pragma unroll
    for (int step = 0; step < kMaxRegisterSteps; ++step) {
      if (step * 32 >= t.dims) break;
#pragma unroll
      for (int n = 0; n < 2; ++n)
#pragma unroll
        for (int part = 0; part < p.key_parts; ++part)
          mma(chain[n][2 * part], chain[n][2 * part + 1], held[step],
              present[n] ? __ldg(column[n][part] + 4 * step) : zero);
    }
  } else {
    // Row i = u R + r holds queries iS + S-1-tt at dims (tt, c); column j keys jS + tt.
    const int row_token[2] = {(t.u * t.rows + r0 + g) * p.stride + p.stride - 1,
                              (t.u * t.rows + r0 + g + 8) * p.stride + p.stride - 1};
    const bool row_present[2] = {r0 + g < t.rows, r0 + g + 8 < t.rows};
    const int column_token[2] = {(col0 + g) * p.stride, (col0 + 8 + g) * p.stride};
    const auto* q = static_cast<const unsigned short*>(p.q) + t.q_base + 8 * q4;
    const auto* k = static_cast<const unsigned short*>(p.k) + t.k_base + 8 * q4;
    auto load = [&](const unsigned short* base, int token, std::int64_t token_stride, int c, bool present) {
      return present ? __ldg(reinterpret_cast<const uint4*>(base + token * token_stride + c)) : zero;
    };
    int tt = 0, c = 0, parity = 0;
    for (int step = 0; step * 32 < t.dims; ++step) {
      RowFragment a;
      a.lo = load(q, row_token[0] - tt, p.q_token, c, row_present[0] && row_token[0] - tt < t.lq);
      a.hi = load(q, row_token[1] - tt, p.q_token, c, row_present[1] && row_token[1] - tt < t.lq);
#pragma unroll
      for (int n = 0; n < 2; ++n) {
        const uint4 b = load(k, column_token[n] + tt, p.k_token, c, column_token[n] + tt < t.lk);
        if (parity) {
          mma(chain[n][2], chain[n][3], a, b);
        } else {
          mma(chain[n][0], chain[n][1], a, b);
        }
      }
      parity ^= 1;
      c += 32;
      if (c == p.d) {
        c = 0;
        ++tt;
      }
    }
  }
#pragma unroll
  for (int n = 0; n < 2; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[n][e] = (chain[n][0][e] + chain[n][1][e]) + (chain[n][2][e] + chain[n][3][e]);
}

}  // namespace sparsefill::cuda::select
