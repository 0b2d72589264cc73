// Block mean pooling of Q and K on the GPU (the pooled selectors: Prism, mean pooling, PBS-Attn,
// FlexPrefill), with Prism's band energies taken on the way: pool_units pools a CTA's share of blocks with a
// given token sum; pool_blocks_kernel (PBS-Attn, FlexPrefill) sums in fp64 in token order, as the CPU, and
// the pooled pipeline (Prism, mean pooling; pooled_pipeline.cuh) by sum_tokens_fp32.
//
// pool_blocks_kernel pools up to two tensors (jobs: the queries and the keys), so that the keys' few heads do
// not pay a launch and a tail of their own. A CTA pools `blocks_per_cta` consecutive blocks of one job for
// every head, so it streams whole token rows (heads x d elements); the `lanes` threads of a head (a power of
// two, adjacent lanes of one warp) each sum kVector consecutive dims at a time. With kVector = 8 a token's
// share is 16 bytes, copied by cp.async into a ring of kPoolStages slots per thread in shared memory, so that
// a thread keeps kPoolStages - 1 tokens in flight without holding them in registers (2% faster than direct
// 16-byte loads on an H200, both at ~3.7 TB/s). Sums are fp64 in token order, as the CPU's. With an energy
// output, the head's lanes also reduce their pooled values' squares (every dim, and each band's dims) by
// shuffles in a fixed order: the statistics Prism's calibration needs, without a second pass over the pooled
// blocks.
#pragma once
#include <algorithm>
#include <cstdint>

#include "common/dynamic_shared.cuh"
#include "select/element_convert.cuh"
#include "select/sequence_lengths.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kPoolThreads = 512;
inline constexpr int kPoolStages = 8;     // ring slots per thread (16 bytes each on the device)
inline constexpr int kPoolBandWords = 4;  // 64-bit words of a band's dim set (head_dim <= 256)

// One tensor of a pool_blocks_kernel launch.
struct PoolJob {
  // [batch, tokens, heads / group, d] at these element strides (batch stride 0: varlen).
  const void* x = nullptr;
  std::int64_t s_batch = 0, s_token = 0, s_head = 0;
  bool keys = false;         // the key-side lengths
  int heads = 0, group = 1;  // output heads; head h reads input head h / group
  // out[b, h, c, u] (pooled keys: the row kernels walk blocks u) instead of out[b, h, u, c].
  bool transposed = false;
  // PBS: [batch, heads, width]: position t reads token order[t]; null: token t.
  const std::int32_t* order = nullptr;
  int width = 0;
  // Divide by the tokens present (FlexPrefill's rescaled last block) instead of by the block.
  bool by_count = false;
  double* out = nullptr;
  int blocks = 0;  // blocks per head in the output layouts (the longest sequence's)
  // Null, or [batch, heads, blocks, 3]: each pooled block's sum of squares over every dim, over band 0's dims
  // and over band 1's (zeros past a sequence's end).
  double* energy = nullptr;
  // The CTA layout (pool_layout): threads a head, blocks a CTA, the job's first CTA.
  int lanes = 0, blocks_per_cta = 0, first_cta = 0;
};

// A job of `heads` output heads pooled from x into `out` (`blocks` a head): the keys (key-side lengths, the
// transposed output) or the queries; the other fields keep their defaults.
inline PoolJob pool_job(const void* x, std::int64_t s_batch, std::int64_t s_token, std::int64_t s_head,
                        bool keys, int heads, int blocks, double* out) {
  PoolJob job;
  job.x = x;
  job.s_batch = s_batch, job.s_token = s_token, job.s_head = s_head;
  job.keys = job.transposed = keys;
  job.heads = heads;
  job.out = out;
  job.blocks = blocks;
  return job;
}

struct PoolParams {
  PoolJob job[2];
  int jobs = 0;
  Lengths lengths;
  int d = 0;
  // The energies' bands: dim c is bit c % 64 of word c / 64.
  unsigned long long band_bits[2][kPoolBandWords] = {};
};

// The vector width of a job's pool_blocks_kernel: 8 when every 8 consecutive dims of a head are one aligned
// 16-byte load of 2-byte elements.
inline int pool_vector_width(const PoolJob& job, int d, std::size_t element_bytes) {
  const std::int64_t align = 16 / static_cast<std::int64_t>(element_bytes);
  const bool aligned = element_bytes == 2 && reinterpret_cast<std::uintptr_t>(job.x) % 16 == 0 &&
                       d % 8 == 0 && job.s_batch % align == 0 && job.s_token % align == 0 &&
                       job.s_head % align == 0;
  return aligned ? 8 : 1;
}

// A job's lanes a head and blocks a CTA when its CTAs of `threads` threads pool `heads` heads at once.
inline void pool_cta_layout(PoolJob& job, int heads, int d, int vector, int threads) {
  job.lanes = 1;
  while (job.lanes < d / vector && job.lanes < 32) job.lanes *= 2;
  const int per_block = heads * job.lanes;
  job.blocks_per_cta = per_block < threads ? threads / per_block : 1;
}

// Fills the jobs' CTA layouts for vector width `vector` and returns the launch's CTAs per sequence (grid x;
// grid y is the batch): a head gets the smallest power of two of lanes that covers its dim groups (at most
// a warp, which then loops over them), and a CTA as many blocks as its kPoolThreads threads hold (one
// at least).
inline unsigned pool_layout(PoolParams& p, int vector) {
  int ctas = 0;
  for (int j = 0; j < p.jobs; ++j) {
    PoolJob& job = p.job[j];
    pool_cta_layout(job, job.heads, p.d, vector, kPoolThreads);
    job.first_cta = ctas;
    ctas += (job.blocks + job.blocks_per_cta - 1) / job.blocks_per_cta;
  }
  return static_cast<unsigned>(ctas);
}

// Dynamic shared memory of pool_blocks_kernel<Element, kVector>: the cp.async ring (kVector = 8) or none.
template <typename Element, int kVector>
constexpr std::size_t pool_smem_bytes() {
  return kVector == 8 ? sizeof(StagedVector<Element>) * kPoolStages * kPoolThreads : 0;
}

template <typename Element, int kVector>
__global__ void pool_blocks_kernel(const __grid_constant__ PoolParams p);

// Launches p's jobs through launch(kernel, grid x, grid y, threads, dynamic shared bytes, p) at the narrower
// vector width of the jobs (pool_layout fills their CTA layouts); `batch` sequences.
template <typename Element, typename Launch>
void launch_pooling(PoolParams& p, int batch, Launch&& launch) {
  int vector = 8;
  for (int j = 0; j < p.jobs; ++j)
    vector = std::min(vector, pool_vector_width(p.job[j], p.d, sizeof(Element)));
  const unsigned ctas = pool_layout(p, vector), sequences = static_cast<unsigned>(batch);
  if (vector == 8) {
    launch(pool_blocks_kernel<Element, 8>, ctas, sequences, kPoolThreads, pool_smem_bytes<Element, 8>(), p);
  } else {
    launch(pool_blocks_kernel<Element, 1>, ctas, sequences, kPoolThreads, std::size_t{0}, p);
  }
}

// The sum over tokens [t_begin, t_end) (positions; with kGather, tokens[t] is the token at position t) of the
// kVector elements at column + token * s_token, fp64 in token order: through this thread's ring slots
// (ring[s * kPoolThreads], kVector = 8) or by direct loads.
template <typename Element, int kVector, bool kGather>
__device__ void sum_tokens(const Element* column, const std::int32_t* tokens, int t_begin, int t_end,
                           std::int64_t s_token, StagedVector<Element>* ring, double (&sum)[kVector]) {
  auto row = [&](int t) { return column + static_cast<std::int64_t>(kGather ? tokens[t] : t) * s_token; };
  if constexpr (kVector == 8) {
    const int n = t_end - t_begin;
#pragma unroll
    for (int s = 0; s < kPoolStages - 1; ++s) {
      if (s < n) stage_vector(ring + s * kPoolThreads, row(t_begin + s));
      stage_commit();
    }
    // The next copy's source without kGather (only read while a token is left).
    const Element* ahead = column + static_cast<std::int64_t>(t_begin + kPoolStages - 1) * s_token;
    for (int i = 0; i < n; ++i) {
      const int next = i + kPoolStages - 1;
      if (next < n)
        stage_vector(ring + next % kPoolStages * kPoolThreads, kGather ? row(t_begin + next) : ahead);
      ahead += s_token;
      stage_commit();
      stage_wait<kPoolStages - 1>();
      float v[8];
      staged_vector(ring[i % kPoolStages * kPoolThreads], v);
#pragma unroll
      for (int e = 0; e < 8; ++e) sum[e] += static_cast<double>(v[e]);
    }
  } else {
#pragma unroll 4
    for (int t = t_begin; t < t_end; ++t) {
      float v[kVector];
      load_vector<kVector>(row(t), v);
#pragma unroll
      for (int e = 0; e < kVector; ++e) sum[e] += static_cast<double>(v[e]);
    }
  }
}

// The fp32 sum of kVector elements of up to kPartialTokens tokens, their loads issued together.
inline constexpr int kPartialTokens = 16;

// Adds the kVector elements at column + t * s_token of tokens t0 .. t0 + n - 1 (n <= kPartialTokens; every
// one when kFull) to `partial` in token order, their loads issued first.
template <bool kFull, typename Element, int kVector>
__device__ void add_partial_tokens(const Element* column, int t0, int n, std::int64_t s_token,
                                   float (&partial)[kVector]) {
  RawVector<Element, kVector> raw[kPartialTokens];
#pragma unroll
  for (int i = 0; i < kPartialTokens; ++i)
    if (kFull || i < n) raw[i] = load_raw<kVector>(column + static_cast<std::int64_t>(t0 + i) * s_token);
#pragma unroll
  for (int i = 0; i < kPartialTokens; ++i) {
    if (!kFull && i >= n) break;
    float v[kVector];
    raw_to_float(raw[i], v);
#pragma unroll
    for (int e = 0; e < kVector; ++e) partial[e] += v[e];
  }
}

// The sum over tokens [t_begin, t_end) of the kVector elements at column + token * s_token: fp32 sums of
// kPartialTokens consecutive tokens (in token order), each added to the fp64 total. No fp64 conversion an
// element (an SM converts 16 a clock; this form takes ~3.5 instructions an element, ~36 elements a clock),
// at the cost of rounding where a run of 16 tokens spans more than the fp32 sum's 24 bits (values 2^12 and
// more apart in magnitude).
template <typename Element, int kVector>
__device__ void sum_tokens_fp32(const Element* column, int t_begin, int t_end, std::int64_t s_token,
                                double (&sum)[kVector]) {
  for (int t0 = t_begin; t0 < t_end; t0 += kPartialTokens) {
    float partial[kVector] = {};
    if (t0 + kPartialTokens <= t_end) {
      add_partial_tokens<true>(column, t0, kPartialTokens, s_token, partial);
    } else {
      add_partial_tokens<false>(column, t0, t_end - t0, s_token, partial);
    }
#pragma unroll
    for (int e = 0; e < kVector; ++e) sum[e] += static_cast<double>(partial[e]);
  }
}

// Pools `blocks` blocks from u0 of the `heads` heads from h0 of `job` (those that exist) with the CTA's
// threads: a head's `job.lanes` lanes (adjacent in a warp) each take kVector dims at a time, the block mean
// is sum(column, tokens, t_begin, t_end, sums) (column: the head's first of those dims; tokens: the job's key
// order of the head or null) divided by the block (or by the tokens present), and with job.energy the pooled
// block's sums of squares. Blocks past a shorter sequence's end (varlen) are written as zeros.
template <typename Element, int kVector, typename SumTokens>
__device__ void pool_units(const PoolParams& p, const PoolJob& job, int b, int h0, int heads, int u0,
                           int blocks, SumTokens&& sum) {
  const int block = p.lengths.block, groups = p.d / kVector;
  const int lanes = job.lanes, per_block = heads * lanes, units = blocks * per_block;
  const int start = job.keys ? p.lengths.k_start(b) : p.lengths.q_start(b);
  const int length = job.keys ? p.lengths.k(b) : p.lengths.q(b);
  const auto* x =
      static_cast<const Element*>(job.x) + b * job.s_batch + static_cast<std::int64_t>(start) * job.s_token;
  const int lane = static_cast<int>(threadIdx.x % 32);
  // Whole warps walk the units, so that a head's lanes shuffle together.
  for (int base = static_cast<int>(threadIdx.x) - lane; base < units; base += static_cast<int>(blockDim.x)) {
    const int unit = base + lane, u = u0 + unit / per_block, h = h0 + unit % per_block / lanes;
    const bool active = unit < units && u < job.blocks && h < job.heads;
    const std::int64_t head = static_cast<std::int64_t>(b) * job.heads + h;
    double energy[3] = {};  // every dim, band 0, band 1
    if (active) {
      const int t_begin = u * block, t_end = min(length, (u + 1) * block);
      const int divisor = job.by_count ? max(t_end - t_begin, 1) : block;
      const std::int32_t* tokens = job.order ? job.order + head * job.width : nullptr;
      for (int g = unit % lanes; g < groups; g += lanes) {
        const int c0 = g * kVector;
        double sums[kVector] = {};
        sum(x + (h / job.group) * job.s_head + c0, tokens, t_begin, t_end, sums);
#pragma unroll
        for (int i = 0; i < kVector; ++i) {
          const int c = c0 + i;
          const double value = sums[i] / divisor, square = value * value;
          job.out[job.transposed ? (head * p.d + c) * job.blocks + u : (head * job.blocks + u) * p.d + c] =
              value;
          energy[0] += square;
          energy[1] += (p.band_bits[0][c / 64] >> (c % 64)) & 1u ? square : 0.0;
          energy[2] += (p.band_bits[1][c / 64] >> (c % 64)) & 1u ? square : 0.0;
        }
      }
    }
    if (job.energy != nullptr) {
#pragma unroll
      for (int i = 0; i < 3; ++i) {
        for (int offset = lanes / 2; offset > 0; offset /= 2)
          energy[i] += __shfl_xor_sync(0xffffffffu, energy[i], offset);
        if (active && unit % lanes == 0) job.energy[(head * job.blocks + u) * 3 + i] = energy[i];
      }
    }
  }
}

// Block mean pooling: the sum over the block's tokens (token order) of x, fp64, divided by the block (or,
// with `by_count`, by the tokens present), for every head, and with `energy` the pooled block's sums of
// squares (pool_units). Grid (pool_layout's CTAs, batch), kPoolThreads threads, pool_smem_bytes.
template <typename Element, int kVector>
__global__ void __launch_bounds__(kPoolThreads, 2) pool_blocks_kernel(const __grid_constant__ PoolParams p) {
  const int j = p.jobs > 1 && static_cast<int>(blockIdx.x) >= p.job[1].first_cta ? 1 : 0;
  const PoolJob& job = p.job[j];
  StagedVector<Element>* ring = dynamic_shared<StagedVector<Element>>() + threadIdx.x;
  pool_units<Element, kVector>(
      p, job, static_cast<int>(blockIdx.y), 0, job.heads,
      (static_cast<int>(blockIdx.x) - job.first_cta) * job.blocks_per_cta, job.blocks_per_cta,
      [&](const Element* column, const std::int32_t* tokens, int t_begin, int t_end, double(&sums)[kVector]) {
        if (tokens != nullptr) {
          sum_tokens<Element, kVector, true>(column, tokens, t_begin, t_end, job.s_token, ring, sums);
        } else {
          sum_tokens<Element, kVector, false>(column, tokens, t_begin, t_end, job.s_token, ring, sums);
        }
      });
}

}  // namespace sparsefill::cuda::select
