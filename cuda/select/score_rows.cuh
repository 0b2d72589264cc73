// The row kernel of the pooled-score selectors (Prism, mean pooling, PBS-Attn; see pooled_scoring.cuh for the
// pooling and the bands' calibration).
//
// A warp scores one (sequence, query head, query block) row: logits of every candidate key block per band,
// the softmax numerators, the top-p cut (the blocks whose higher-ranked mass, ties by block index as the CPU's
// stable sort, is below p: on the numerators, below p times their sum, so no division per block), and the
// kept set OR-ed across bands; then the forced blocks, and the row is compacted into the
// canonical mask (ascending indices, zeros after the count). Plain device code apart from dynamic_shared and
// the mma (fp64_mma.cuh), so that tests/select/test_score_rows_emulated.cpp runs it on the host.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common/dynamic_shared.cuh"
#include "select/element_convert.cuh"
#include "select/fp64_exp.cuh"
#include "select/fp64_mma.cuh"
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
  const double* pooled_q;  // [batch, heads_q, nq, d]; null: each CTA pools its query blocks from `q` (PBS: d a
                           // multiple of 8, rows 16-byte aligned)
  const void* q;           // the query tensor (input dtype) and its element strides, read when pooled_q is null
  std::int64_t q_batch, q_token, q_head;
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

inline constexpr int kRowsPerCta = 8;  // the fp64 mma's M: a band_logits row tile; FlexPrefill's map CTA takes one
inline constexpr int kLogitPad = 8;    // doubles after each staged logit row (rows alternate bank halves)
inline constexpr int kTilesInFlight = 4;  // independent key tiles per warp (8-block columns, an mma per row tile)
// Doubles after each staged query row: with a row stride of d + 4 doubles the 8 rows of an mma's A operand
// start 8 banks apart, so its loads are free of bank conflicts.
inline constexpr int kQueryRowPad = 4;

// Rows of a score_rows_kernel CTA (a warp each) for rows of `items` lane columns: two mma row tiles, which share
// every key fragment read from L2, while their logits fit in shared memory (rows up to 1024 blocks); one beyond.
constexpr int score_rows_per_cta(int items) { return items <= 32 ? 2 * kRowsPerCta : kRowsPerCta; }

// The grid of score_rows_kernel: (heads of a chunk, row tiles, head chunks x batch). A chunk is at least 4
// query heads and whole GQA groups; within it the row tiles run from the last down, so that the CTAs of
// causal rows start longest first and a launch's last wave holds short rows, while the CTAs running at once
// read the pooled keys of one chunk's heads.
struct ScoreRowsGrid {
  unsigned x, y, z;
};
inline int score_rows_chunk(int heads_q, int heads_kv) {
  const int group = heads_q / heads_kv;
  return std::min(heads_q, (4 + group - 1) / group * group);
}
inline ScoreRowsGrid score_rows_grid(int batch, int heads_q, int heads_kv, int nq, int items) {
  const int chunk = score_rows_chunk(heads_q, heads_kv);
  const int rows = score_rows_per_cta(items);
  return {static_cast<unsigned>(chunk), static_cast<unsigned>((nq + rows - 1) / rows),
          static_cast<unsigned>((heads_q + chunk - 1) / chunk * batch)};
}

// The key blocks a row scores: v < candidates outside [skip_begin, skip_end) (PBS's own segment; empty else).
struct ScoredBlocks {
  int candidates, skip_begin, skip_end;
  __device__ bool has(int v) const { return v < candidates && (v < skip_begin || v >= skip_end); }
};

// Shared memory of score_rows_kernel: the tile's pooled query rows, the current band's rows in its dim order,
// one band's logits of every row (then its softmax numerators), each warp's maxima of every row, the band's
// dims and key-row offsets, the rows' scored blocks, and each warp's scratch for cut().
inline std::size_t score_rows_smem_bytes(int d, int items) {
  const auto rows = static_cast<std::size_t>(score_rows_per_cta(items));
  return sizeof(double) *
             (2 * rows * (d + kQueryRowPad) + rows * (items * kKeyChunk + kLogitPad) + rows * rows) +
         2 * sizeof(int) * kMaxBandDims + (sizeof(ScoredBlocks) + sizeof(CutScratch)) * rows;
}

// Stages one band for band_logits: its dims (read once from the parameters, whose per-lane indexing would
// serialise) into band_dims, each dim's row offset in the transposed pooled keys (dims[i] * nk_stride; 0 for
// the padding, whose query values are zeros) into key_offsets, and the kRows rows of q_rows
// ([kRows][d + kQueryRowPad]) gathered in the band's dim order into band_rows (same layout, zeros from `count`
// up to `count` rounded to the mma's k of 4). Returns the padded dim count. Every thread of the CTA calls it;
// the caller syncs before band_logits.
template <int kRows>
__device__ int stage_band(const double* q_rows, int d, const Band& band, int nk_stride, int* band_dims,
                          double* band_rows, int* key_offsets) {
  const int count = band.count, padded = (count + 3) / 4 * 4;
  for (int j = threadIdx.x; j < padded; j += blockDim.x) {
    const int dim = j < count ? band.dims[j] : 0;
    band_dims[j] = dim;
    key_offsets[j] = j < count ? dim * nk_stride : 0;
  }
  __syncthreads();
  const int warps = static_cast<int>(blockDim.x / 32), lane = threadIdx.x % 32;
  for (int row = threadIdx.x / 32; row < kRows; row += warps)
    for (int j = lane; j < padded; j += 32)
      band_rows[row * (d + kQueryRowPad) + j] = j < count ? q_rows[row * (d + kQueryRowPad) + band_dims[j]] : 0.0;
  return padded;
}

// Two adjacent logits of an mma accumulator, stored with one 16-byte access (the logit rows start 16-byte
// aligned, and a lane's pair at an even column).
struct alignas(16) LogitPair {
  double first, second;
};

// kCount key tiles of band_logits, t0 + kRows * t (t < kCount), every one with a column below its `tiles`;
// `most` gathers the maxima of this lane's rows (row tile m: row 8 m + lane / 4, scoring `scored[m]`) over
// its columns.
template <int kRows, int kCount>
__device__ void logit_tiles(const double* a_row, int d, const int* key_offsets, int padded, const double* pk,
                            int nk, int t0, double scale, double* logits, int stride,
                            const ScoredBlocks (&scored)[kRows / kRowsPerCta],
                            double (&most)[kRows / kRowsPerCta]) {
  constexpr int kRowTiles = kRows / kRowsPerCta;
  const int lane = threadIdx.x % 32, frag_mn = lane / 4, frag_k = lane % 4;
  double acc[kCount][kRowTiles][2] = {};
  const char* column[kCount];  // each tile's key block in dim 0; a dim adds a byte offset (cheap addresses)
#pragma unroll
  for (int t = 0; t < kCount; ++t)
    column[t] = reinterpret_cast<const char*>(pk + min((t0 + t * kRows) * 8 + frag_mn, nk - 1));
#pragma unroll 4
  for (int i = 0; i < padded; i += 4) {
    double a[kRowTiles];
#pragma unroll
    for (int m = 0; m < kRowTiles; ++m) a[m] = a_row[m * kRowsPerCta * (d + kQueryRowPad) + i];
    const unsigned bytes = static_cast<unsigned>(key_offsets[i + frag_k]) * sizeof(double);
#pragma unroll
    for (int t = 0; t < kCount; ++t) {
      const double key = *reinterpret_cast<const double*>(column[t] + bytes);
#pragma unroll
      for (int m = 0; m < kRowTiles; ++m) mma_m8n8k4(acc[t][m], a[m], key);
    }
  }
#pragma unroll
  for (int t = 0; t < kCount; ++t)
#pragma unroll
    for (int m = 0; m < kRowTiles; ++m) {
      const int v = (t0 + t * kRows) * 8 + 2 * frag_k;
      const LogitPair pair{acc[t][m][0] * scale, acc[t][m][1] * scale};
      *reinterpret_cast<LogitPair*>(logits + (m * kRowsPerCta + frag_mn) * stride + v) = pair;
      if (scored[m].has(v)) most[m] = fmax(most[m], pair.first);
      if (scored[m].has(v + 1)) most[m] = fmax(most[m], pair.second);
    }
}

// One band's logits of a CTA's kRows staged rows (band_rows [kRows][d + kQueryRowPad], in the band's dim
// order, zeros in the padding; kRows a multiple of the mma's 8 rows, one warp per row in the CTA) against key
// blocks v < 8 * tiles, times `scale`, into logits[row * stride + v] (16-byte aligned, stride even): an fp64
// GEMM over the band's `padded` dims (a multiple of the mma's k of 4), dim i read from pk + key_offsets[i]
// (the pooled keys, transposed: [d][nk_stride]). Warp w takes the 8-column tiles w + kRows j, up to
// kTilesInFlight at a time (only tiles below `tiles`: short rows multiply no tile past their end), each key
// fragment read once from L2 and multiplied with every 8-row tile; columns past nk read block nk - 1 (their
// logits are never used). Each warp also takes its columns' maxima of every row over the blocks the row
// scores (row_blocks[row]) into maxima[warp * kRows + row] (-inf where it has none). Ends with the logits and
// maxima written (the caller syncs before reading).
template <int kRows>
__device__ void band_logits(const double* band_rows, int d, const int* key_offsets, int padded,
                            const double* pk, int nk, int tiles, double scale, const ScoredBlocks* row_blocks,
                            double* logits, int stride, double* maxima) {
  static_assert(kRows % kRowsPerCta == 0, "whole mma row tiles");
  static_assert(kTilesInFlight == 4, "one case per tile count");
  constexpr int kRowTiles = kRows / kRowsPerCta;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const double* a_row = band_rows + (lane / 4) * (d + kQueryRowPad) + lane % 4;
  ScoredBlocks scored[kRowTiles];
  double most[kRowTiles];
#pragma unroll
  for (int m = 0; m < kRowTiles; ++m) {
    scored[m] = row_blocks[m * kRowsPerCta + lane / 4];
    most[m] = -INFINITY;
  }
  for (int t0 = warp; t0 < tiles; t0 += kRows * kTilesInFlight) {
    switch (min(kTilesInFlight, (tiles - t0 + kRows - 1) / kRows)) {
      case 4:
        logit_tiles<kRows, 4>(a_row, d, key_offsets, padded, pk, nk, t0, scale, logits, stride, scored, most);
        break;
      case 3:
        logit_tiles<kRows, 3>(a_row, d, key_offsets, padded, pk, nk, t0, scale, logits, stride, scored, most);
        break;
      case 2:
        logit_tiles<kRows, 2>(a_row, d, key_offsets, padded, pk, nk, t0, scale, logits, stride, scored, most);
        break;
      default:
        logit_tiles<kRows, 1>(a_row, d, key_offsets, padded, pk, nk, t0, scale, logits, stride, scored, most);
        break;
    }
  }
#pragma unroll
  for (int m = 0; m < kRowTiles; ++m) {  // over the 4 lanes of a row, then one lane writes it
    most[m] = fmax(most[m], __shfl_xor_sync(0xffffffffu, most[m], 1));
    most[m] = fmax(most[m], __shfl_xor_sync(0xffffffffu, most[m], 2));
    if (lane % 4 == 0) maxima[warp * kRows + m * kRowsPerCta + lane / 4] = most[m];
  }
}

// The maximum of row `row` over the per-warp maxima band_logits wrote (the same in every lane).
template <int kRows>
__device__ double row_maximum(const double* maxima, int row) {
  const int lane = threadIdx.x % 32;
  return warp_max(lane < kRows ? maxima[lane * kRows + row] : -INFINITY);
}

// The softmax numerators of one logit row (this warp's; lane l takes blocks 32 c + l), in place: exp(x - m)
// over the candidates v < `candidates` outside `excluded` (written as 0; entries past the candidates are left
// as they are), m their maximum (band_logits' row_maximum). Returns the candidates for cut() (total: the
// numerators' sum, the softmax's denominator, or their count when `counting`: the top-k rule), with cut()'s
// first histogram level built into `scratch` when one is given. The row must have a candidate.
// kFp32Exp: each numerator at fp32's precision (exp_nonpositive_fp32: 4 instructions instead of the fp64
// exp's ~35 with its constants), for Prism's and mean pooling's mass rules: a prefix mass then differs from
// the CPU's by a few 1e-6, relative, at most, so a decision can differ only where a mass lies that close to
// the threshold, or where two blocks' numerators agree to that rounding and the cut falls between them. The
// top-k rule keeps the fp64 exp (fp32 flushes blocks 2^-126 below the row's maximum to equal zeros, which the
// CPU ranks apart), and so does PBS-Attn, whose masks stay equal to the CPU's.
template <int kItems, bool kFp32Exp>
__device__ CutRow row_exp(double* row, int candidates, unsigned long long excluded, double m, bool counting,
                          CutScratch* scratch) {
  const int lane = threadIdx.x % 32, columns = min(kItems, (candidates + kKeyChunk - 1) / kKeyChunk);
  const unsigned long long present = blocks_below<kItems>(candidates), live = present & ~excluded;
  if (scratch != nullptr) clear_histogram(*scratch);
  NumeratorRowBuilder builder(counting, scratch != nullptr ? scratch->bins : nullptr);
  for (int c0 = 0; c0 < columns; c0 += 4) {
    // 4 columns' exponentials computed unconditionally (branch-free, so their chains interleave; entries that
    // are not candidates hold stale values, whose results are discarded), then written in column order.
    double e[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const double x = row[(c0 + j) * kKeyChunk + lane] - m;
      e[j] = kFp32Exp ? exp_nonpositive_fp32(x) : exp_nonpositive(x);
    }
    const auto here = static_cast<unsigned>(present >> c0) & 15u,
               scored = static_cast<unsigned>(live >> c0) & 15u;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if ((here >> j) & 1u) row[(c0 + j) * kKeyChunk + lane] = (scored >> j) & 1u ? e[j] : 0.0;
      if ((scored >> j) & 1u) builder.add(e[j]);
    }
  }
  return builder.finish(row, live, columns);
}

// The softmax of one logit row, in place (row_exp's fp64 numerators divided by their sum); m: as for row_exp.
template <int kItems>
__device__ void row_softmax(double* row, int candidates, unsigned long long excluded, double m) {
  const int lane = threadIdx.x % 32;
  const CutRow r = row_exp<kItems, false>(row, candidates, excluded, m, false, nullptr);
  for (int c = 0; c < r.columns; ++c)
    if (c * kKeyChunk + lane < candidates) row[c * kKeyChunk + lane] /= r.total;
}

// One CTA scores kRows = score_rows_per_cta(kItems) consecutive mask rows u0 .. of query head h of
// sequence b, one warp per row; lane l owns key blocks v = 32 c + l (c < kItems). Per band, the CTA's logits
// are one fp64 GEMM over the band's dims (band_logits: the warps split the key blocks into 8-column tiles,
// the pooled keys read from L2 in the transposed layout) into shared memory; then each warp takes its row's
// softmax and the rule's cut (see cut()). Every thread of the CTA calls it (kRows warps,
// score_rows_smem_bytes of dynamic shared memory).
template <typename Element, int kItems>
__device__ void score_row_tile(const ScoringParams& p, int b, int h, int u0) {
  static_assert(kItems <= 64 && kItems % 4 == 0, "the kept set is a 64-bit mask per lane, read 4 columns at a time");
  constexpr int kRows = score_rows_per_cta(kItems);
  double* shared = dynamic_shared<double>();
  constexpr int kStride = kItems * kKeyChunk + kLogitPad;
  double* q_rows = shared;                                        // [kRows][d + kQueryRowPad]
  double* band_rows = q_rows + kRows * (p.d + kQueryRowPad);  // the same, in the current band's dim order
  double* logits = band_rows + kRows * (p.d + kQueryRowPad);  // [kRows][kStride]
  double* maxima = logits + kRows * kStride;                  // [warp][row]
  int* key_offsets = reinterpret_cast<int*>(maxima + kRows * kRows);                     // [kMaxBandDims]
  int* band_dims = key_offsets + kMaxBandDims;                                           // [kMaxBandDims]
  ScoredBlocks* row_blocks = reinterpret_cast<ScoredBlocks*>(band_dims + kMaxBandDims);  // [kRows]
  CutScratch& scratch = reinterpret_cast<CutScratch*>(row_blocks + kRows)[threadIdx.x / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int nq = p.lengths.q_blocks(b), nk = p.lengths.k_blocks(b);  // this sequence's (varlen: <= p.nq, p.nk)
  const int rows = max(0, min(kRows, nq - u0)), u = u0 + warp;
  const int hk = h / (p.heads_q / p.heads_kv), shift = nk - nq;
  auto candidates_of = [&](int row) { return p.causal ? min(max(row + shift + 1, 0), nk) : nk; };
  const int candidates = warp < rows ? candidates_of(u) : 0;
  const int tile_candidates = rows > 0 ? candidates_of(u0 + rows - 1) : 0;  // the most of any row here
  const double* pk = p.pooled_k + (static_cast<std::int64_t>(b) * p.heads_kv + hk) * p.d * p.nk;
  if (p.pooled_q != nullptr) {
    const double* pq = p.pooled_q + ((static_cast<std::int64_t>(b) * p.heads_q + h) * p.nq + u0) * p.d;
    for (int j = lane; j < p.d; j += 32)
      q_rows[warp * (p.d + kQueryRowPad) + j] = warp < rows ? pq[warp * p.d + j] : 0.0;
  } else {  // the block mean as pool_blocks_kernel takes it: fp64 sums in token order, then / block, 8 dims
            // (one 16-byte load) a thread (PBS's GPU selector takes 16-byte rows, d a multiple of 32)
    const auto* q = static_cast<const Element*>(p.q) + b * p.q_batch +
                    static_cast<std::int64_t>(p.lengths.q_start(b)) * p.q_token + h * p.q_head;
    const int lq = p.lengths.q(b), block = p.lengths.block, groups = p.d / 8;
    for (int i = threadIdx.x; i < kRows * groups; i += blockDim.x) {
      const int row = i / groups, c0 = (i % groups) * 8, t_end = row < rows ? min(lq, (u0 + row + 1) * block) : 0;
      double sum[8] = {};
#pragma unroll 4
      for (int t = (u0 + row) * block; t < t_end; ++t) {
        float v[8];
        load_vector<8>(q + static_cast<std::int64_t>(t) * p.q_token + c0, v);
#pragma unroll
        for (int e = 0; e < 8; ++e) sum[e] += static_cast<double>(v[e]);
      }
#pragma unroll
      for (int e = 0; e < 8; ++e) q_rows[row * (p.d + kQueryRowPad) + c0 + e] = row < rows ? sum[e] / block : 0.0;
    }
  }
  unsigned long long kept = 0;  // bit c: block 32 c + lane
  unsigned long long own = 0;   // PBS: the row's own segment, not scored
  ScoredBlocks blocks{candidates, 0, 0};
  if (p.segment_blocks > 0 && warp < rows) {
    const int first = (u / p.segment_blocks) * p.segment_blocks, end = min(first + p.segment_blocks, nk);
    own = blocks_below<kItems>(end) & ~blocks_below<kItems>(first);
    blocks.skip_begin = first, blocks.skip_end = end;
  }
  if (lane == 0) row_blocks[warp] = blocks;
  const bool scored = __any_sync(0xffffffffu, (blocks_below<kItems>(candidates) & ~own) != 0);
  const int tiles = (tile_candidates + 7) / 8;

  for (int z = 0; z < p.bands; ++z) {
    const double scale = p.scales ? p.scales[(b * p.heads_q + h) * p.bands + z] : p.fixed_scale;
    __syncthreads();  // the query rows are staged; the previous band's logits are consumed
    const int padded = stage_band<kRows>(q_rows, p.d, p.band[z], p.nk, band_dims, band_rows, key_offsets);
    __syncthreads();
    band_logits<kRows>(band_rows, p.d, key_offsets, padded, pk, nk, tiles, scale, row_blocks, logits, kStride,
                       maxima);
    __syncthreads();
    if (!scored) continue;
    // The rule on the softmax numerators: a mass p of the probabilities is p times the numerators' sum.
    double* row = logits + warp * kStride;
    const double m = row_maximum<kRows>(maxima, warp);
    const bool counting = p.rule == kTopK;
    const CutRow r = counting || p.segment_blocks > 0
                         ? row_exp<kItems, false>(row, candidates, own, m, counting, &scratch)
                         : row_exp<kItems, true>(row, candidates, own, m, false, &scratch);
    kept |= cut<kItems>(row, r, p.rule, counting ? static_cast<double>(p.top_k) : p.band[z].p * r.total, 0.0,
                        scratch);
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

// score_row_tile over the grid of score_rows_grid: CTA (x, y, z) takes head chunk z % chunks, head x of the
// chunk, of sequence z / chunks, and the row tile gridDim.y - 1 - y (the longest causal rows first).
template <typename Element, int kItems>
__global__ void __launch_bounds__(score_rows_per_cta(kItems) * 32, 1)
    score_rows_kernel(const __grid_constant__ ScoringParams p) {
  const int chunks = (p.heads_q + static_cast<int>(gridDim.x) - 1) / static_cast<int>(gridDim.x);
  const int b = static_cast<int>(blockIdx.z) / chunks;
  const int h =
      static_cast<int>(blockIdx.z) % chunks * static_cast<int>(gridDim.x) + static_cast<int>(blockIdx.x);
  if (h >= p.heads_q) return;  // the last chunk's heads past heads_q (the whole CTA)
  score_row_tile<Element, kItems>(p, b, h,
                                  static_cast<int>(gridDim.y - 1 - blockIdx.y) * score_rows_per_cta(kItems));
}

}  // namespace sparsefill::cuda::select
