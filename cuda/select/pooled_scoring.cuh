// Kernels of the pooled-score selectors on the GPU (Prism and mean pooling; design note).
//
// Every step mirrors the CPU reference (src/select/prism_selector.cpp, meanpool_selector.cpp) in fp64 and in
// the same summation order where the order is per element: block pooling sums a block's tokens in token
// order and divides by the block; a logit sums its band's dims in the reference's dim order. Reductions over
// many elements (the bands' RMS statistics, the softmax normaliser, the prefix mass of the top-p rule) run
// in another order, so a decision can differ from the CPU's only where a value sits within rounding of the
// threshold (exact ties are broken by block index, as the CPU does).
//
// A warp scores one (sequence, query head, query block) row: logits of every candidate key block per band,
// softmax, the top-p cut (the blocks whose higher-ranked mass, ties by block index as the CPU's stable sort,
// is below p), and the kept set OR-ed across bands; then the forced blocks, and the row is compacted into the
// canonical mask (ascending indices, zeros after the count).
#pragma once
#include <cub/block/block_reduce.cuh>
#include <cstdint>

#include "select/ranked_cut.cuh"
#include "select/sequence_lengths.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kMaxBandDims = 256;

inline constexpr double kRmsFloor = 1e-6;

struct Band {
  int dims[kMaxBandDims];
  int count = 0;
  double p = 0.0;  // top-p threshold
};

struct ScoringParams {
  const double* pooled_q;  // [batch, heads_q, nq, d]
  const double* pooled_k;  // [batch, heads_kv, d, nk] (transposed)
  const double* scales;    // [batch, heads_q, bands]: the logit multiplier of each band; null: fixed_scale
  double fixed_scale;
  int batch, heads_q, heads_kv, d, nq, nk, bands;  // nq, nk: of the longest sequence (the layouts' strides)
  Lengths lengths;
  int causal;
  int rule;   // a Rule
  int top_k;  // kTopK
  int force_sink, force_diagonal;
  // PBS (segment_blocks > 0): the query block's own segment is left out of the scoring and forced afterwards;
  // sequences of at most one segment keep every causal block; the block holding original token 0 in key_order
  // ([batch, heads_q, width]) is forced (the sink).
  int segment_blocks;
  const std::int32_t* key_order;
  int width;
  Band band[2];
  std::int32_t* kv_num_blocks;  // [batch, heads_q, nq]
  std::int32_t* kv_indices;     // [batch, heads_q, nq, nk]
};

// Block mean pooling: the sum over the block's tokens (token order) of x / block, fp64, written as
// out[b, h, u, c] or, `transposed`, out[b, h, c, u] (pooled keys: the row kernel's threads walk blocks u, so
// that layout makes their loads coalesced). Head h reads input head h / group. With `order` (PBS: [batch, heads,
// width]) position t reads token order[t] (the permuted keys). Blocks past a shorter sequence's end (varlen)
// are written as zeros. `keys` picks the key-side lengths.
template <typename Element>
__global__ void pool_blocks_kernel(const Element* x, std::int64_t s_batch, std::int64_t s_token, std::int64_t s_head,
                                   Lengths lengths, bool keys, int heads, int group, int d, bool transposed,
                                   const std::int32_t* order, int width, double* out) {
  const int u = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int nb = gridDim.x, block = lengths.block;
  const int start = keys ? lengths.k_start(b) : lengths.q_start(b);
  const int t_end = min(keys ? lengths.k(b) : lengths.q(b), (u + 1) * block);
  const std::int64_t head = static_cast<std::int64_t>(b) * heads + h;
  const std::int32_t* tokens = order ? order + head * width : nullptr;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    double sum = 0.0;
    for (int t = u * block; t < t_end; ++t) {
      const int token = tokens ? tokens[t] : t;
      sum += static_cast<double>(static_cast<float>(x[b * s_batch + (start + token) * s_token + (h / group) * s_head + c]));
    }
    out[transposed ? (head * d + c) * nb + u : (head * nb + u) * d + c] = sum / block;
  }
}

inline constexpr int kEnergySlices = 64;  // CTAs per head of the energy sums (partials reduced in order)

// Partial sums of squares of pooled blocks per (b, h) and slice of its sequence's blocks: [0] over every dim,
// [1 + z] over band z's dims, into partial[(bh * kEnergySlices + slice) * 3 + i]. Element (u, c) of a head sits
// at u * u_stride + c * c_stride in a layout of nb_max blocks.
__global__ void pooled_energy_kernel(const double* pooled, int nb_max, Lengths lengths, bool keys, int heads, int d,
                                     int u_stride, int c_stride, Band high, Band low, double* partial) {
  const int bh = blockIdx.x, slice = blockIdx.y, b = bh / heads;
  const int nb = keys ? lengths.k_blocks(b) : lengths.q_blocks(b);
  const double* rows = pooled + static_cast<std::int64_t>(bh) * nb_max * d;
  const int u_begin = static_cast<int>(static_cast<long long>(nb) * slice / kEnergySlices);
  const int n = static_cast<int>(static_cast<long long>(nb) * (slice + 1) / kEnergySlices) - u_begin;
  double all = 0, band0 = 0, band1 = 0;
  for (int i = threadIdx.x; i < n * d; i += blockDim.x) {
    const double x = rows[(u_begin + i / d) * u_stride + (i % d) * c_stride];
    all += x * x;
  }
  for (int i = threadIdx.x; i < n * high.count; i += blockDim.x) {
    const double x = rows[(u_begin + i / high.count) * u_stride + high.dims[i % high.count] * c_stride];
    band0 += x * x;
  }
  for (int i = threadIdx.x; i < n * low.count; i += blockDim.x) {
    const double x = rows[(u_begin + i / low.count) * u_stride + low.dims[i % low.count] * c_stride];
    band1 += x * x;
  }
  using Reduce = cub::BlockReduce<double, 256>;
  __shared__ typename Reduce::TempStorage temp;
  all = Reduce(temp).Sum(all);
  __syncthreads();
  band0 = Reduce(temp).Sum(band0);
  __syncthreads();
  band1 = Reduce(temp).Sum(band1);
  if (threadIdx.x == 0) {
    double* out = partial + (static_cast<std::int64_t>(bh) * kEnergySlices + slice) * 3;
    out[0] = all;
    out[1] = band0;
    out[2] = band1;
  }
}

// Sum i of a head's energy partials, in slice order (deterministic).
__device__ inline double energy_sum(const double* partial, int bh, int i) {
  double sum = 0;
  for (int slice = 0; slice < kEnergySlices; ++slice) sum += partial[(bh * kEnergySlices + slice) * 3 + i];
  return sum;
}

// Prism's band multipliers 1 / (sqrt(d_z) * max(tau_z, 1e-6)), tau_z = sqrt(d_z / d) * rms(Q_z)/rms(Q) *
// rms(K_z)/rms(K) (1 without calibration); mean pooling: one band, 1 / sqrt(d).
__global__ void band_scale_kernel(const double* energy_q, const double* energy_k, int batch, int heads_q,
                                  int heads_kv, Lengths lengths, int d, int bands, int calibrate, Band high, Band low,
                                  double* scales) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= batch * heads_q) return;
  const int b = i / heads_q, h = i % heads_q, hk = h / (heads_q / heads_kv);
  const int nq = lengths.q_blocks(b), nk = lengths.k_blocks(b);
  const int bk = b * heads_kv + hk;
  for (int z = 0; z < bands; ++z) {
    const double dz = z == 0 ? high.count : low.count;
    double tau = 1.0;
    if (calibrate) {
      const double rq = sqrt(energy_sum(energy_q, i, 1 + z) / (static_cast<double>(nq) * dz)),
                   rq_all = sqrt(energy_sum(energy_q, i, 0) / (static_cast<double>(nq) * d));
      const double rk = sqrt(energy_sum(energy_k, bk, 1 + z) / (static_cast<double>(nk) * dz)),
                   rk_all = sqrt(energy_sum(energy_k, bk, 0) / (static_cast<double>(nk) * d));
      tau = sqrt(dz / d) * (rq / fmax(rq_all, kRmsFloor)) * (rk / fmax(rk_all, kRmsFloor));
    }
    scales[i * bands + z] = 1.0 / (sqrt(dz) * fmax(tau, kRmsFloor));
  }
}

inline constexpr int kRowsPerCta = 8;  // one warp per mask row

// Shared memory of score_rows_kernel: the tile's pooled query rows and one staged key chunk.
inline std::size_t score_rows_smem_bytes(int d, int max_band_dims) {
  return sizeof(double) * (static_cast<std::size_t>(kRowsPerCta) * d + static_cast<std::size_t>(max_band_dims) * kKeyChunk);
}

// One CTA scores kRowsPerCta consecutive mask rows of one (sequence, query head), one warp per row; lane l owns
// key blocks v = 32 c + l (c < kItems). Per band: chunks of 32 pooled keys are staged in shared memory once for
// the CTA's rows and each lane sums its logit over the band's dims in the reference's order; the warp takes
// the softmax; the rule's cut is found without sorting (see cut()).
template <int kItems>
__global__ void __launch_bounds__(kRowsPerCta * 32) score_rows_kernel(const ScoringParams p) {
  static_assert(kItems <= 64, "the kept set is a 64-bit mask per lane");
  extern __shared__ double shared[];
  double* q_rows = shared;                          // [kRowsPerCta][d]
  double* chunk = shared + kRowsPerCta * p.d;       // [band dims][kKeyChunk]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int u0 = blockIdx.x * kRowsPerCta, h = blockIdx.y, b = blockIdx.z;
  const int nq = p.lengths.q_blocks(b), nk = p.lengths.k_blocks(b);  // this sequence's (varlen: <= p.nq, p.nk)
  const int rows = max(0, min(kRowsPerCta, nq - u0)), u = u0 + warp;
  const int hk = h / (p.heads_q / p.heads_kv), shift = nk - nq;
  auto candidates_of = [&](int row) { return p.causal ? min(max(row + shift + 1, 0), nk) : nk; };
  const int candidates = warp < rows ? candidates_of(u) : 0;
  const int tile_candidates = rows > 0 ? candidates_of(u0 + rows - 1) : 0;  // the most of any row here
  const double* pq = p.pooled_q + ((static_cast<std::int64_t>(b) * p.heads_q + h) * p.nq + u0) * p.d;
  const double* pk = p.pooled_k + (static_cast<std::int64_t>(b) * p.heads_kv + hk) * p.d * p.nk;
  for (int i = threadIdx.x; i < rows * p.d; i += blockDim.x) q_rows[i] = pq[i];
  unsigned long long kept = 0;  // bit c: block 32 c + lane
  unsigned long long own = 0;   // PBS: the row's own segment, not scored
  if (p.segment_blocks > 0 && warp < rows) {
    const int first = (u / p.segment_blocks) * p.segment_blocks;
    own = blocks_below<kItems>(min(first + p.segment_blocks, nk)) & ~blocks_below<kItems>(first);
  }
  const bool scored = __any_sync(0xffffffffu, (blocks_below<kItems>(candidates) & ~own) != 0);

  for (int z = 0; z < p.bands; ++z) {
    const Band& band = p.band[z];
    const double scale = p.scales ? p.scales[(b * p.heads_q + h) * p.bands + z] : p.fixed_scale;
    double prob[kItems];
#pragma unroll
    for (int c = 0; c < kItems; ++c) {
      if (c * kKeyChunk < tile_candidates) {  // uniform over the CTA
        __syncthreads();
        for (int i = threadIdx.x; i < band.count * kKeyChunk; i += blockDim.x) {
          const int v = c * kKeyChunk + i % kKeyChunk;
          chunk[i] = v < p.nk ? pk[static_cast<std::int64_t>(band.dims[i / kKeyChunk]) * p.nk + v] : 0.0;
        }
        __syncthreads();
      }
      prob[c] = -INFINITY;
      if (c * kKeyChunk + lane < candidates && !((own >> c) & 1ull)) {
        const double* q = q_rows + warp * p.d;
        double s = 0.0;
        for (int i = 0; i < band.count; ++i) s += q[band.dims[i]] * chunk[i * kKeyChunk + lane];
        prob[c] = s * scale;
      }
    }
    if (!scored) continue;
    double m = -INFINITY;
#pragma unroll
    for (int c = 0; c < kItems && c * kKeyChunk < candidates; ++c) m = fmax(m, prob[c]);
    m = warp_max(m);
    double sum = 0.0;
#pragma unroll
    for (int c = 0; c < kItems && c * kKeyChunk < candidates; ++c) {
      prob[c] = c * kKeyChunk + lane < candidates ? exp(prob[c] - m) : 0.0;
      sum += prob[c];
    }
    const double total = warp_sum(sum);
#pragma unroll
    for (int c = 0; c < kItems && c * kKeyChunk < candidates; ++c) prob[c] /= total;
    kept |= cut<kItems>(prob, candidates, own, p.rule, p.rule == kTopK ? static_cast<double>(p.top_k) : band.p, 0.0);
  }
  if (u >= p.nq) return;
  if (warp >= rows) kept = 0;  // a row past this sequence's end (varlen) stays empty
  if (warp < rows && p.segment_blocks > 0) {
    const bool dense = p.lengths.q(b) <= p.segment_blocks * p.lengths.block;  // the reference's fallback
    const std::int32_t* order = p.key_order + (static_cast<std::int64_t>(b) * p.heads_q + h) * p.width;
    int sink = 1 << 30;  // the position of original token 0, inside the first segment
    for (int i = lane; !dense && i < p.segment_blocks * p.lengths.block; i += 32)
      if (order[i] == 0) sink = i;
    for (int offset = 16; offset > 0; offset /= 2) sink = min(sink, __shfl_xor_sync(0xffffffffu, sink, offset));
    kept = dense ? blocks_below<kItems>(candidates) : kept | own | block_bit(sink / p.lengths.block);
  }
  if (warp < rows && p.force_sink && nk > 0 && lane == 0) kept |= 1ull;
  const int diagonal = u + shift;
  if (warp < rows && p.force_diagonal && diagonal >= 0 && diagonal < nk && lane == diagonal % kKeyChunk)
    kept |= 1ull << (diagonal / kKeyChunk);
  const std::int64_t mask_row = (static_cast<std::int64_t>(b) * p.heads_q + h) * p.nq + u;
  write_mask_row<kItems>(kept, p.nk, p.kv_indices + mask_row * p.nk, p.kv_num_blocks + mask_row);
}

}  // namespace sparsefill::cuda::select
