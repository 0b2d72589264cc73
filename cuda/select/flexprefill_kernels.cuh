// FlexPrefill on the GPU (algorithms.md §4.3; the CPU form, which defines it, is
// src/select/flexprefill_selector.cpp). Per (sequence, query head), after the shared last-rows passes:
//
// 1. The last block's attention (rows = the block, scale 1/sqrt(d), causal) summed per column and per
//    diagonal, each probability divided by the block (line_sums.cuh): the verticals, then the slashes, in one
//    buffer.
// 2. flex_cover_kernel, after each: the line array's score_cover_topk (the count of the largest values whose
//    running sum stays within gamma, plus one) by a radix select over the values' bit patterns (fixed-point
//    masses, as the map's), and its block sums (the slashes indexed as the reference's L - 1 - offset), in
//    the CPU's order.
// 3. flex_plan_kernel: the pooled estimate softmax(mean last q . pooled K) against the verticals' block sums
//    by the square root of the Jensen-Shannon divergence; below tau the head is query-aware and falls to the
//    minimum budgets. The budgets' top vertical blocks (block 0 forced) and top slash diagonals (the main one
//    forced) are ranked exactly (ties by the lower index).
// 4. Query-aware heads cut their pooled block-attention map (pooled Q . pooled K / sqrt(d), causal softmax
//    per row) by T5 over the whole flattened map: keep the largest entries while their running sum is at most
//    gamma * nb. The map (nb^2 / 2 entries a head) is not stored: flex_map_kernel recomputes it on fp64
//    tensor cores per pass. A radix select over the probabilities' 62 significant pattern bits, kRadixBits a
//    level, finds the boundary: each level histograms the entries of the boundary's class (count and mass;
//    the mass in fixed point, integer sums being exact and order-free), and flex_radix_kernel finds the bin
//    where the running mass from the top passes gamma * nb. Entries equal to the boundary are taken in
//    flattened order.
// 5. The raster (flex_map_kernel's last pass): verticals, slashes, block (0, 0) and the map's entries.
//
// Sums over many values (softmax normalisers, the divergence, the cover mass) run in another order than the
// CPU's sequential ones, the last rows' logits and numerators are fp32-precision (last_rows.cuh), and the
// map's mass is summed exactly in fixed point (2^-50 a unit): a decision can differ from the CPU's only where
// a value sits within rounding of its threshold (tau, gamma) or two block sums tie to that rounding at a
// top-k cut. Sequences of at most max(2 B, ceil(min_budget / B) B) tokens run dense, as the reference does.
#pragma once
#include <cstdint>

#include "select/cta_reduce.cuh"
#include "select/element_convert.cuh"
#include "select/line_sums.cuh"
#include "select/score_rows.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kFlexThreads = 1024;           // the per-head kernels
inline constexpr int kReferenceBudgetDivisor = 128;  // the reference divides token counts by 128 literally
// Key blocks of a head: 64 a lane in the map rows, as many in the plan's shared memory.
inline constexpr int kMaxFlexBlocks = 64 * kKeyChunk;
inline constexpr int kRadixBits = 10, kRadixBins = 1 << kRadixBits;
inline constexpr int kPatternBits = 62;  // probabilities lie in [0, 1]: the two top bits of their patterns are 0
inline constexpr int kRadixLevels = (kPatternBits + kRadixBits - 1) / kRadixBits;
inline constexpr double kFixedUnit = 1125899906842624.0;  // 2^50: the map's mass in units of 2^-50
inline constexpr int kCoverDigitBits = 8, kCoverBins = 1 << kCoverDigitBits;  // flex_cover_kernel's radix
inline constexpr int kCoverLoads = 8;  // loads a thread of flex_cover_kernel keeps in flight
static_assert(kCoverBins == 256, "first_crossing_from_top searches 256 bins");
enum FlexPlanField : int { kPlanDense = 0, kPlanQueryAware, kPlanVertical, kPlanSlash, kPlanFields };
enum MapPass : int { kMapHistogram = 0, kMapTies, kMapRaster };

// The radix select's progress on one head's map.
struct RadixState {
  unsigned long long prefix;  // the boundary's pattern bits resolved so far (all of them after the last level)
  unsigned long long above;   // fixed-point mass of the entries above the boundary's class
  unsigned long long ties;    // entries equal to the boundary (after the last level)
  unsigned long long taken;   // of those, how many are kept (the first in flattened order)
  int keep_all;               // the whole map fits in gamma * nb
};

struct FlexParams {
  LineParams lines;  // the last block's attention and its line sums (vertical, then slash, in one buffer)
  double gamma, tau;
  int min_budget, max_budget;     // tokens (max_budget 0: none)
  double* block_sums;             // [batch, heads_q, 2, nk]: the verticals' and the slashes' block sums
  std::int32_t* cover;            // [batch, heads_q, 2]: score_cover_topk of the verticals and the slashes
  std::int32_t* plan;             // [batch, heads_q, kPlanFields]
  unsigned char* kept_lines;      // [batch, heads_q, 2, nk]: kept vertical blocks, kept slash indices
  double* pooled_q;               // [batch, heads_q, nq, d]: block means over the tokens present
  double* pooled_k;               // [batch, heads_kv, d, nk] (transposed), the same means
  unsigned long long* histogram;  // [batch, heads_q, kRadixLevels, kRadixBins, 2]: count, fixed-point mass
  RadixState* radix;              // [batch, heads_q]
  std::int32_t* row_ties;         // [batch, heads_q, nq]: entries equal to the boundary per map row
};

// A probability's mass in fixed point, rounded to the nearest unit.
__device__ inline unsigned long long fixed_mass(double x) {
  return static_cast<unsigned long long>(x * kFixedUnit + 0.5);
}

// The reference's dense fallback for a sequence of L tokens.
__device__ inline bool flex_dense(const FlexParams& fp, int L) {
  const int block = fp.lines.rows.lengths.block;
  return L <= max(2 * block, (fp.min_budget + block - 1) / block * block);
}

// The low bit and width of radix level `level` (from the top).
__device__ inline int radix_shift(int level) { return max(0, kPatternBits - kRadixBits * (level + 1)); }
__device__ inline int radix_width(int level) { return kPatternBits - kRadixBits * level - radix_shift(level); }

// Step 2 for the verticals (slash = 0) or the slashes (1) of (b, h) = (blockIdx.z, blockIdx.y), kFlexThreads
// threads.
__global__ void __launch_bounds__(kFlexThreads) flex_cover_kernel(const FlexParams fp, int slash) {
  __shared__ double scratch[kCtaScratch];
  __shared__ long long counts[kCtaScratch];
  __shared__ unsigned long long cover_bins[kCoverBins];
  __shared__ unsigned long long cover_above;
  __shared__ int cover_digit;
  const LastRowsParams& p = fp.lines.rows;
  const int h = blockIdx.y, b = blockIdx.z, L = p.lengths.k(b), block = p.lengths.block;
  if (flex_dense(fp, L)) return;
  const std::int64_t row = static_cast<std::int64_t>(b) * p.heads_q + h;
  const double* x = (slash ? fp.lines.slash : fp.lines.vertical) + row * p.width;
  double* sums = fp.block_sums + (row * 2 + slash) * fp.lines.nk;
  const int lane = threadIdx.x % 32, warps = static_cast<int>(blockDim.x) / 32;
  for (int v = static_cast<int>(threadIdx.x) / 32; v < fp.lines.nk;
       v += warps) {  // a warp a block, coalesced
    double s = 0.0;   // reference index j (a slash's is L - 1 - offset); the lanes' sums added by shuffles
    for (int j = v * block + lane; j < min(L, (v + 1) * block); j += 32) s += x[slash ? L - 1 - j : j];
    for (int offset = 16; offset > 0; offset /= 2) s += __shfl_down_sync(0xffffffffu, s, offset);
    if (lane == 0) sums[v] = s;
  }
  // Calls f(value) for the thread's values x[j], j = threadIdx.x + i blockDim.x in order of i, with
  // kCoverLoads loads in flight: one CTA a head reads its L values ~12 times, so a pass is bound by the
  // loads' latency unless several overlap.
  auto for_each_value = [&](auto&& f) {
    const int threads = static_cast<int>(blockDim.x);
    for (int j0 = threadIdx.x; j0 < L; j0 += kCoverLoads * threads) {
      double value[kCoverLoads];
#pragma unroll
      for (int t = 0; t < kCoverLoads; ++t) value[t] = j0 + t * threads < L ? x[j0 + t * threads] : 0.0;
#pragma unroll
      for (int t = 0; t < kCoverLoads; ++t)
        if (j0 + t * threads < L) f(value[t]);
    }
  };
  auto mass_above = [&](unsigned long long key) {
    double s = 0.0;
    for_each_value([&](double value) { s += pattern_of(value) > key ? value : 0.0; });
    return cta_sum(s, scratch);
  };
  // The smallest pattern `lo` whose strictly larger values fit in gamma: those are all kept, and of the
  // values equal to it as many as still fit. A radix select from the top byte: each level adds the
  // fixed-point mass of the values of the boundary's class (the bytes found so far) by their next byte, and
  // one warp finds the byte where the running mass from the top passes gamma; no byte does when every value
  // fits (lo = 0).
  const unsigned long long limit = fixed_mass(fp.gamma);
  unsigned long long lo = 0, found_mask = 0, above_class = 0;
  for (int shift = 64 - kCoverDigitBits; shift >= 0; shift -= kCoverDigitBits) {
    for (int i = threadIdx.x; i < kCoverBins; i += blockDim.x) cover_bins[i] = 0;
    __syncthreads();
    // A thread adds its run of values of one byte at once: most values share the top bytes, whose bins
    // would otherwise take every thread's atomics one after the other.
    unsigned long long run_mass = 0;
    int run_digit = -1;
    for_each_value([&](double value) {
      const unsigned long long key = pattern_of(value), mass = fixed_mass(value);
      if ((key & found_mask) != lo || mass == 0) return;
      const int digit = static_cast<int>((key >> shift) & (kCoverBins - 1));
      if (digit != run_digit && run_digit >= 0) atomicAdd(&cover_bins[run_digit], run_mass), run_mass = 0;
      run_digit = digit;
      run_mass += mass;
    });
    if (run_digit >= 0) atomicAdd(&cover_bins[run_digit], run_mass);
    __syncthreads();
    if (threadIdx.x < 32) {
      unsigned long long before = 0;
      const int digit = first_crossing_from_top(
          cover_bins, above_class, [&](unsigned long long through) { return through > limit; }, before);
      if (threadIdx.x == 0) cover_digit = digit, cover_above = before;
    }
    __syncthreads();
    if (cover_digit < 0) break;  // every value fits, lo = 0 (only at the first level: below it a byte passes)
    lo |= static_cast<unsigned long long>(cover_digit) << shift;
    found_mask |= static_cast<unsigned long long>(kCoverBins - 1) << shift;
    above_class = cover_above;
  }
  long long above = 0, equal = 0;
  for_each_value([&](double value) {
    above += pattern_of(value) > lo;
    equal += pattern_of(value) == lo;
  });
  above = cta_sum(above, counts);
  equal = cta_sum(equal, counts);
  const double mass = mass_above(lo);
  if (threadIdx.x == 0) {
    long long kept = above;
    if (lo == 0) {
      kept = L;  // every positive value fits, and zeros add nothing
    } else {
      const double value = __longlong_as_double(static_cast<long long>(lo));
      double running = mass;
      for (long long t = 0; t < equal && running + value <= fp.gamma; ++t, ++kept) running += value;
    }
    fp.cover[row * 2 + slash] = static_cast<std::int32_t>(kept + 1);
  }
}

// Step 3 and the map's set-up for (b, h) = (blockIdx.z, blockIdx.y), kFlexThreads threads.
template <typename Element>
__global__ void __launch_bounds__(kFlexThreads) flex_plan_kernel(const FlexParams fp) {
  __shared__ double scratch[kCtaScratch];
  __shared__ double mean_q[kMaxBandDims];
  __shared__ double values[kMaxFlexBlocks];
  const LastRowsParams& p = fp.lines.rows;
  const int h = blockIdx.y, b = blockIdx.z, L = p.lengths.k(b), block = p.lengths.block, d = p.d;
  const int nk = fp.lines.nk, nb = p.lengths.k_blocks(b), hk = h / (p.heads_q / p.heads_kv);
  const std::int64_t row = static_cast<std::int64_t>(b) * p.heads_q + h;
  std::int32_t* plan = fp.plan + row * kPlanFields;
  unsigned long long* histogram = fp.histogram + row * kRadixLevels * kRadixBins * 2;
  for (int i = threadIdx.x; i < kRadixLevels * kRadixBins * 2; i += blockDim.x) histogram[i] = 0;
  for (int u = threadIdx.x; u < fp.lines.nq; u += blockDim.x) fp.row_ties[row * fp.lines.nq + u] = 0;
  if (threadIdx.x == 0) fp.radix[row] = RadixState{0, 0, 0, 0, 0};
  const bool dense = flex_dense(fp, L);
  if (threadIdx.x == 0) plan[kPlanDense] = dense;
  if (dense) return;
  // The estimate: softmax over blocks of (mean over the last block's queries of q / sqrt(d)) . pooled K.
  const auto* q = static_cast<const Element*>(p.q) + b * p.q_batch +
                  static_cast<std::int64_t>(p.lengths.q_start(b)) * p.q_token + h * p.q_head;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    double s = 0.0;
    for (int r = 0; r < block; ++r)
      s += static_cast<double>(to_float(q[static_cast<std::int64_t>(L - block + r) * p.q_token + c])) * p.scale / block;
    mean_q[c] = s;
  }
  __syncthreads();
  const double* pk = fp.pooled_k + (static_cast<std::int64_t>(b) * p.heads_kv + hk) * d * nk;
  double m = -INFINITY;
  for (int v = threadIdx.x; v < nb; v += blockDim.x) {
    double s = 0.0;  // the CPU's dot product: dims in order, no fused multiply-add
    for (int c = 0; c < d; ++c) s = __dadd_rn(s, __dmul_rn(mean_q[c], pk[static_cast<std::int64_t>(c) * nk + v]));
    values[v] = s;
    m = fmax(m, s);
  }
  m = cta_max(m, scratch);
  double z = 0.0;
  for (int v = threadIdx.x; v < nb; v += blockDim.x) z += exp(values[v] - m);
  z = cta_sum(z, scratch);
  const double* vertical_blocks = fp.block_sums + row * 2 * nk;
  double js = 0.0;
  for (int v = threadIdx.x; v < nb; v += blockDim.x) {
    const double a = exp(values[v] - m) / z, c = vertical_blocks[v], mix = 0.5 * (a + c);
    if (mix > 0) js += 0.5 * (a > 0 ? a * log(a / mix) : 0.0) + 0.5 * (c > 0 ? c * log(c / mix) : 0.0);
  }
  js = cta_sum(js, scratch);
  const bool query_aware = sqrt(fmax(js, 0.0)) < fp.tau;
  const int min_blocks = (fp.min_budget + block - 1) / block;
  const int max_blocks = fp.max_budget > 0 ? min(nb, (fp.max_budget + block - 1) / block) : nb;
  for (int slash = 0; slash < 2; ++slash) {
    const int cover = fp.cover[row * 2 + slash];
    const int budget = query_aware ? min_blocks : min(max(cover / kReferenceBudgetDivisor + 1, min_blocks), max_blocks);
    const double* sums = fp.block_sums + (row * 2 + slash) * nk;
    const int forced = slash ? nb - 1 : 0;  // the main diagonal; block 0
    __syncthreads();  // the estimate's (or the verticals') values are consumed
    for (int v = threadIdx.x; v < nb; v += blockDim.x) values[v] = v == forced ? INFINITY : sums[v];
    __syncthreads();
    unsigned char* kept = fp.kept_lines + (row * 2 + slash) * nk;
    for (int v = threadIdx.x; v < nk; v += blockDim.x) {
      int rank = 0;  // blocks ranked before v: larger, or equal with a lower index
      for (int w = 0; v < nb && w < nb; ++w) rank += values[w] > values[v] || (values[w] == values[v] && w < v);
      kept[v] = v < nb && rank < budget;
    }
    if (threadIdx.x == 0) plan[slash ? kPlanSlash : kPlanVertical] = budget;
  }
  if (threadIdx.x == 0) plan[kPlanQueryAware] = query_aware;
}

// Shared memory of flex_map_kernel<kItems>: the CTA's pooled query rows, their logits, each warp's row
// maxima, the histogram's bins (count and mass), the key-row offsets and the rows' scored blocks.
inline std::size_t flex_map_smem_bytes(int d, int items) {
  return sizeof(double) * (static_cast<std::size_t>(kRowsPerCta) * (d + kQueryRowPad) +
                           static_cast<std::size_t>(kRowsPerCta) * (items * kKeyChunk + kLogitPad) +
                           static_cast<std::size_t>(kRowsPerCta) * kRowsPerCta) +
         sizeof(unsigned long long) * kRadixBins + sizeof(unsigned) * kRadixBins +
         sizeof(int) * kMaxBandDims + sizeof(ScoredBlocks) * kRowsPerCta;
}

// One pass over kRowsPerCta map rows of (b, h) = (blockIdx.z, blockIdx.y), one warp a row (lane l: blocks
// 32 c + l): the histogram of radix level `level` (kMapHistogram), each row's entries equal to the boundary
// (kMapTies, only when some but not all of them are kept), or the mask rows (kMapRaster).
template <int kItems>
__global__ void __launch_bounds__(kRowsPerCta * 32) flex_map_kernel(const FlexParams fp, int pass, int level) {
  static_assert(kItems <= 64, "a row's set is a 64-bit mask per lane");
  const LastRowsParams& p = fp.lines.rows;
  const int h = blockIdx.y, b = blockIdx.z, nb = p.lengths.k_blocks(b), nk = fp.lines.nk, d = p.d;
  const std::int64_t row = static_cast<std::int64_t>(b) * p.heads_q + h;
  const std::int32_t* plan = fp.plan + row * kPlanFields;
  const RadixState& radix = fp.radix[row];
  const bool dense = plan[kPlanDense], mapped = !dense && plan[kPlanQueryAware];
  const bool partial_ties = radix.taken > 0 && radix.taken < radix.ties;
  if (pass != kMapRaster && (!mapped || radix.keep_all || (pass == kMapTies && !partial_ties))) return;
  constexpr int kStride = kItems * kKeyChunk + kLogitPad;
  double* q_rows = dynamic_shared<double>();                    // [kRowsPerCta][d + kQueryRowPad]
  double* logits = q_rows + kRowsPerCta * (d + kQueryRowPad);   // [kRowsPerCta][kStride]
  double* maxima = logits + kRowsPerCta * kStride;              // [warp][row]
  auto* mass = reinterpret_cast<unsigned long long*>(maxima + kRowsPerCta * kRowsPerCta);  // [kRadixBins]
  auto* count = reinterpret_cast<unsigned*>(mass + kRadixBins);                            // [kRadixBins]
  int* key_offsets = reinterpret_cast<int*>(count + kRadixBins);                           // [kMaxBandDims]
  auto* row_blocks = reinterpret_cast<ScoredBlocks*>(key_offsets + kMaxBandDims);          // [kRowsPerCta]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int u0 = blockIdx.x * kRowsPerCta, rows = max(0, min(kRowsPerCta, nb - u0)), u = u0 + warp;
  const int candidates = warp < rows ? u + 1 : 0;  // causal, seqlen_q == seqlen_k
  double* prob = logits + warp * kStride;  // this warp's row: logits, then probabilities (block 32 c + lane)
  if (mapped && rows > 0) {
    const double* pq = fp.pooled_q + (row * fp.lines.nq + u0) * d;
    for (int i = threadIdx.x; i < kRowsPerCta * d; i += blockDim.x)
      q_rows[i / d * (d + kQueryRowPad) + i % d] = i < rows * d ? pq[i] : 0.0;
    const int padded = (d + 3) / 4 * 4;
    for (int i = threadIdx.x; i < kRowsPerCta * (padded - d); i += blockDim.x)  // the mma's k padding: zeros
      q_rows[i / (padded - d) * (d + kQueryRowPad) + d + i % (padded - d)] = 0.0;
    for (int i = threadIdx.x; i < padded; i += blockDim.x) key_offsets[i] = i < d ? i * nk : 0;
    if (lane == 0) row_blocks[warp] = {candidates, 0, 0};
    __syncthreads();
    const double* pk = fp.pooled_k + (static_cast<std::int64_t>(b) * p.heads_kv + h / (p.heads_q / p.heads_kv)) * d * nk;
    band_logits<kRowsPerCta>(q_rows, d, key_offsets, padded, pk, nb, (u0 + rows + 7) / 8, p.scale, row_blocks,
                             logits, kStride, maxima);
    __syncthreads();
    if (warp < rows) row_softmax<kItems>(prob, candidates, 0ull, row_maximum<kRowsPerCta>(maxima, warp));
  }
  auto live = [&](int c) { return c * kKeyChunk + lane < candidates; };
  if (pass == kMapHistogram) {
    const int shift = radix_shift(level), width = radix_width(level);
    for (int i = threadIdx.x; i < kRadixBins; i += blockDim.x) mass[i] = count[i] = 0;
    __syncthreads();
#pragma unroll
    for (int c = 0; c < kItems; ++c) {
      const unsigned long long key = pattern_of(prob[c * kKeyChunk + lane]);
      if (!live(c) || (key >> (shift + width)) != (radix.prefix >> (shift + width))) continue;
      const int bin = static_cast<int>((key >> shift) & ((1ull << width) - 1));
      atomicAdd(&count[bin], 1u);
      atomicAdd(&mass[bin], fixed_mass(prob[c * kKeyChunk + lane]));
    }
    __syncthreads();
    unsigned long long* histogram = fp.histogram + (row * kRadixLevels + level) * kRadixBins * 2;
    for (int i = threadIdx.x; i < kRadixBins; i += blockDim.x) {
      if (count[i] == 0) continue;
      atomicAdd(&histogram[2 * i], static_cast<unsigned long long>(count[i]));
      atomicAdd(&histogram[2 * i + 1], mass[i]);
    }
    return;
  }
  unsigned long long ties = 0;  // this row's entries equal to the boundary (bit c: block 32 c + lane)
#pragma unroll
  for (int c = 0; c < kItems; ++c)
    if (mapped && !radix.keep_all && live(c) && pattern_of(prob[c * kKeyChunk + lane]) == radix.prefix) ties |= 1ull << c;
  if (pass == kMapTies) {
    const int n = warp_count(ties);
    if (warp < rows && lane == 0) fp.row_ties[row * fp.lines.nq + u] = n;
    return;
  }
  if (u >= fp.lines.nq) return;
  unsigned long long kept = 0;
  if (warp < rows && dense) {
    kept = blocks_below<kItems>(candidates);
  } else if (warp < rows) {
    const unsigned char* vertical = fp.kept_lines + row * 2 * nk;
    const unsigned char* slash = vertical + nk;
#pragma unroll
    for (int c = 0; c < kItems; ++c) {
      const int v = c * kKeyChunk + lane;
      if (v <= u && (vertical[v] || slash[nb - 1 - (u - v)])) kept |= 1ull << c;
      if (mapped && live(c) && (radix.keep_all || pattern_of(prob[c * kKeyChunk + lane]) > radix.prefix)) kept |= 1ull << c;
    }
    if (u == 0) kept |= block_bit(0);
    if (mapped && partial_ties) {  // the first `taken` ties in flattened order (row, then block)
      long long before = 0;
      for (int w = lane; w < u; w += 32) before += fp.row_ties[row * fp.lines.nq + w];
      for (int offset = 16; offset > 0; offset /= 2) before += __shfl_xor_sync(0xffffffffu, before, offset);
#pragma unroll
      for (int c = 0; c < kItems; ++c) {
        const unsigned ballot = __ballot_sync(0xffffffffu, (ties >> c) & 1ull);
        const long long rank = before + __popc(ballot & ((1u << lane) - 1u));
        if (((ties >> c) & 1ull) && rank < static_cast<long long>(radix.taken)) kept |= 1ull << c;
        before += __popc(ballot);
      }
    }
  }
  const std::int64_t mask_row = row * fp.lines.nq + u;
  write_mask_row<kItems>(kept, nk, fp.lines.kv_indices + mask_row * nk, fp.lines.kv_num_blocks + mask_row);
}

// After radix level `level`'s histogram of (b, h) = (blockIdx.z, blockIdx.y): the bin where the running mass
// from the top passes gamma * nb becomes part of the boundary's prefix (one thread). At level 0 a map that fits
// whole is kept whole; after the last level the boundary is one value, of which as many entries are kept as
// still fit.
__global__ void flex_radix_kernel(const FlexParams fp, int level) {
  const LastRowsParams& p = fp.lines.rows;
  const int h = blockIdx.y, b = blockIdx.z, nb = p.lengths.k_blocks(b);
  const std::int64_t row = static_cast<std::int64_t>(b) * p.heads_q + h;
  const std::int32_t* plan = fp.plan + row * kPlanFields;
  RadixState& radix = fp.radix[row];
  if (threadIdx.x != 0 || plan[kPlanDense] || !plan[kPlanQueryAware] || radix.keep_all) return;
  const unsigned long long limit = static_cast<unsigned long long>(fp.gamma * static_cast<double>(nb) * kFixedUnit);
  const unsigned long long* histogram = fp.histogram + (row * kRadixLevels + level) * kRadixBins * 2;
  const int shift = radix_shift(level);
  unsigned long long running = radix.above;
  for (int bin = (1 << radix_width(level)) - 1; bin >= 0; --bin) {
    const unsigned long long n = histogram[2 * bin], m = histogram[2 * bin + 1];
    if (running + m <= limit) {
      running += m;
      continue;
    }
    radix.prefix |= static_cast<unsigned long long>(bin) << shift;
    radix.above = running;
    if (level == kRadixLevels - 1) {
      radix.ties = n;
      radix.taken = (limit - running) / (m / n);  // every tie has the same fixed-point mass
    }
    return;
  }
  radix.keep_all = 1;  // level 0 only: the map's whole mass fits
}

}  // namespace sparsefill::cuda::select
