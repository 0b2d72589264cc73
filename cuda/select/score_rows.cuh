// The row kernel of the pooled-score selectors (Prism, mean pooling, PBS-Attn; see pooled_scoring.cuh for the
// pooling and the bands' calibration).
//
// A warp scores one (sequence, query head, query block) row: logits of every candidate key block per band,
// softmax, the top-p cut (the blocks whose higher-ranked mass, ties by block index as the CPU's stable sort,
// is below p), and the kept set OR-ed across bands; then the forced blocks, and the row is compacted into the
// canonical mask (ascending indices, zeros after the count). Plain device code apart from dynamic_shared, so
// that tests/select/test_emulated_kernels.cpp runs it on the host.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/dynamic_shared.cuh"
#include "select/ranked_cut.cuh"
#include "select/sequence_lengths.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kMaxBandDims = 256;

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
  double* shared = dynamic_shared<double>();
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
