// MInference's top-k of a line array (algorithms.md §4.4; CPU: src/select/minference_selector.cpp): the k
// largest line sums, ties by the lower index (vertical: k = clamp(vertical_size, 30, lk); slash:
// clamp(slash_size, 50, lk)), without sorting.
//
// A radix select over the values' 64-bit patterns (monotone for the non-negative sums and +inf) finds the
// k-th largest pattern 8 bits at a time: each pass counts the entries that match the bits found so far by
// their next byte (a 256-bin shared histogram; lanes of a warp with the same byte add once,
// __match_any_sync), and one warp finds the byte where the count from the top reaches the entries still
// wanted. The entries are read coalesced, a CTA's threads striding over the line array, 8 loads a thread at a
// time. A last pass over
// chunks of the array in index order keeps the entries above the boundary and its first ties: a CTA-wide
// exclusive scan of each chunk's (above, tied) counts gives every kept entry its tie rank and, for the slash,
// its place among the kept offsets (ascending).
#pragma once
#include <cstdint>

#include "select/cta_reduce.cuh"
#include "select/line_sums.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kTopKThreads = 1024;
inline constexpr int kTopKWarps = kTopKThreads / 32;
inline constexpr int kTopKDigitBits = 8, kTopKBins = 1 << kTopKDigitBits;
inline constexpr int kTopKLoads = 8;  // loads a thread keeps in flight in a histogram pass
static_assert(kTopKBins == 256, "first_crossing_from_top searches 256 bins");

// Top-k of the vertical (slash = 0) or slash (1) sums of (b, h) = (blockIdx.z, blockIdx.y), kTopKThreads
// threads: vertical writes each block's lowest kept column (INT32_MAX: none), slash the kept offsets
// ascending and their count.
__global__ void __launch_bounds__(kTopKThreads) line_top_k_kernel(const LineParams lp, int slash) {
  __shared__ int bins[kTopKBins];
  __shared__ int warp_totals[kTopKWarps];
  __shared__ int chosen_digit, chosen_above;
  const LastRowsParams& p = lp.rows;
  const int h = blockIdx.y, b = blockIdx.z, lk = p.lengths.k(b), block = p.lengths.block;
  const int lane = threadIdx.x % 32, threads = static_cast<int>(blockDim.x);
  const std::int64_t row = static_cast<std::int64_t>(b) * p.heads_q + h;
  const double* values = (slash ? lp.slash : lp.vertical) + row * p.width;
  const int k = min(max(slash ? lp.slash_size : lp.vertical_size, slash ? 50 : 30), lk);
  auto key_of = [&](int x) { return static_cast<unsigned long long>(__double_as_longlong(values[x])); };
  // The k-th largest pattern, `boundary`, byte by byte from the top; `wanted`: how many entries matching the
  // bytes found so far are still to be taken (at the end: the ties at the boundary to take).
  unsigned long long boundary = 0, found_mask = 0;
  int wanted = k;
  for (int shift = 64 - kTopKDigitBits; shift >= 0; shift -= kTopKDigitBits) {
    for (int i = threadIdx.x; i < kTopKBins; i += threads) bins[i] = 0;
    __syncthreads();
    // Whole warps in step, for the warp's match; kTopKLoads loads in flight a thread (one CTA a head reads
    // the line array 9 times, so a pass would otherwise wait on each load's latency).
    for (int x0 = 0; x0 < lk; x0 += kTopKLoads * threads) {
      unsigned long long key[kTopKLoads];
#pragma unroll
      for (int t = 0; t < kTopKLoads; ++t) {
        const int x = x0 + t * threads + static_cast<int>(threadIdx.x);
        key[t] = x < lk ? key_of(x) : 0;
      }
#pragma unroll
      for (int t = 0; t < kTopKLoads; ++t) {
        const bool present = x0 + t * threads + static_cast<int>(threadIdx.x) < lk;
        const int digit = present && (key[t] & found_mask) == boundary
                              ? static_cast<int>((key[t] >> shift) & (kTopKBins - 1))
                              : -1;
        const unsigned same = __match_any_sync(0xffffffffu, digit);
        if (digit >= 0 && lane == __ffs(static_cast<int>(same)) - 1) atomicAdd(&bins[digit], __popc(same));
      }
    }
    __syncthreads();
    if (threadIdx.x < 32) {  // a crossing exists: wanted <= the entries matching the bytes found
      int above = 0;
      const int digit = first_crossing_from_top(
          bins, 0, [&](int through) { return through >= wanted; }, above);
      if (lane == 0) chosen_digit = digit, chosen_above = above;
    }
    __syncthreads();
    boundary |= static_cast<unsigned long long>(chosen_digit) << shift;
    found_mask |= static_cast<unsigned long long>(kTopKBins - 1) << shift;
    wanted -= chosen_above;
  }
  std::int32_t* column_min = lp.column_min + row * lp.nk;
  if (!slash) {
    for (int v = threadIdx.x; v < lp.nk; v += threads) column_min[v] = INT32_MAX;
    __syncthreads();
  }
  std::int32_t* offsets = lp.offsets + row * p.width;
  constexpr int kTied = 1, kAbove = 1 << 16;  // packed counts of a chunk (at most kTopKThreads each)
  int ties_before = 0, kept_before = 0;       // over the chunks done
  for (int x0 = 0; x0 < lk; x0 += threads) {
    const int x = x0 + static_cast<int>(threadIdx.x);
    const unsigned long long key = x < lk ? key_of(x) : 0;
    const bool above = x < lk && key > boundary, tied = x < lk && key == boundary;
    int total;
    const int before = cta_exclusive_sum((above ? kAbove : 0) + (tied ? kTied : 0), warp_totals, total);
    const int ties_left = max(wanted - ties_before, 0);  // ties this chunk may still take, lowest index first
    if (above || (tied && before % kAbove < ties_left)) {
      if (slash)
        offsets[kept_before + before / kAbove + min(before % kAbove, ties_left)] = x;
      else
        atomicMin(&column_min[x / block], x);
    }
    kept_before += total / kAbove + min(total % kAbove, ties_left);
    ties_before += total % kAbove;
  }
  if (slash && threadIdx.x == 0) lp.offset_count[row] = kept_before;
}

}  // namespace sparsefill::cuda::select
