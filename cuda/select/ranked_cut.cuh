// Warp-level selection rules over one mask row held in registers (shared by every GPU selector).
//
// A row's scores sit in a warp: lane l holds the blocks v = 32 c + l (c < kItems) and a set of blocks is a
// 64-bit mask per lane (bit c: block 32 c + l). The cumulative rules of algorithms.md §0.2 keep a prefix of the
// row ranked by score (ties by the lower block index, as the CPU's stable sort), so the prefix's end is found
// by binary search over the scores' bit patterns instead of by sorting. Reductions run in another order than
// the CPU's sequential sums; a decision can differ only where a mass lies within rounding of the threshold.
#pragma once
#include <cstdint>

namespace sparsefill::cuda::select {

inline constexpr int kKeyChunk = 32;  // blocks per register column: one per lane

// The top-p rules over a row ranked by score: T1 keeps a block while the mass ranked before it is below p; T2
// the same set, but nothing when the row's mass never reaches p (the CPU's T2 for p > 0, which the selectors'
// settings require); T5 keeps a block while the mass up to and including it is at most p; T4 is T5 falling
// back to the top block when T5 keeps none; top-k keeps the first k.
enum Rule : int { kT1 = 0, kT2 = 1, kT4 = 2, kT5 = 3, kTopK = 4 };

// Warp reductions that leave the same value in every lane: lane 0 reduces in a fixed order, then broadcasts.
__device__ inline double warp_sum(double x) {
  for (int offset = 16; offset > 0; offset /= 2) x += __shfl_down_sync(0xffffffffu, x, offset);
  return __shfl_sync(0xffffffffu, x, 0);
}
__device__ inline double warp_max(double x) {
  for (int offset = 16; offset > 0; offset /= 2) x = fmax(x, __shfl_xor_sync(0xffffffffu, x, offset));
  return x;
}
__device__ inline unsigned long long warp_max(unsigned long long x) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const unsigned long long y = __shfl_xor_sync(0xffffffffu, x, offset);
    x = y > x ? y : x;
  }
  return x;
}
__device__ inline int warp_count(unsigned long long bits) {
  int n = __popcll(bits);
  for (int offset = 16; offset > 0; offset /= 2) n += __shfl_xor_sync(0xffffffffu, n, offset);
  return n;
}

// The kept blocks of one ranked row (see Rule) among the candidates v < `candidates` that are not in
// `excluded`. Scores must be non-negative (their 64-bit patterns are then monotone). `base` is mass counted as
// ranked before every candidate (T3's forced blocks). With W(K) the weight (score, or 1 for top-k) of the
// candidates whose pattern exceeds K, a binary search finds where the kept prefix ends; only the blocks at
// exactly the boundary pattern need the tie rule (lower index first), which an in-order scan settles.
template <int kItems>
__device__ unsigned long long cut(const double (&prob)[kItems], int candidates, unsigned long long excluded, int rule,
                                  double threshold, double base) {
  const int lane = threadIdx.x % 32;
  const bool counting = rule == kTopK, inclusive = rule == kT4 || rule == kT5;
  auto valid = [&](int c) { return c * kKeyChunk + lane < candidates && !((excluded >> c) & 1ull); };
  auto key_of = [&](int c) { return static_cast<unsigned long long>(__double_as_longlong(prob[c])); };
  auto weight_above = [&](unsigned long long key) {
    double w = 0.0;
#pragma unroll
    for (int c = 0; c < kItems && c * kKeyChunk < candidates; ++c) w += valid(c) && key_of(c) > key ? (counting ? 1.0 : prob[c]) : 0.0;
    return warp_sum(w);
  };
  unsigned long long top = 0;
  double mass = 0.0;
#pragma unroll
  for (int c = 0; c < kItems && c * kKeyChunk < candidates; ++c) {
    top = valid(c) && key_of(c) > top ? key_of(c) : top;
    mass += valid(c) ? prob[c] : 0.0;
  }
  top = warp_max(top);
  if (rule == kT2 && !(base + warp_sum(mass) >= threshold)) return 0;  // T2: the mass never reaches p
  // Exclusive rules: the smallest K with base + W(K) < threshold; the boundary blocks have pattern K.
  // Inclusive rules: the smallest K with base + W(K - 1) (the weight at or above K) <= threshold; the boundary
  // blocks have the largest pattern below K.
  unsigned long long lo = 0, hi = top + 1;
  while (lo < hi) {
    const unsigned long long mid = lo + (hi - lo) / 2;
    const bool fits = inclusive ? base + (mid == 0 ? warp_sum(mass) : weight_above(mid - 1)) <= threshold
                                : base + weight_above(mid) < threshold;
    if (fits) hi = mid; else lo = mid + 1;
  }
  unsigned long long boundary = lo;
  double before = base + weight_above(lo);
  if (inclusive) {
    unsigned long long below = 0;
    bool any = false;
#pragma unroll
    for (int c = 0; c < kItems && c * kKeyChunk < candidates; ++c) {
      if (valid(c) && key_of(c) < lo) {
        below = any && below > key_of(c) ? below : key_of(c);
        any = true;
      }
    }
    const bool found = __any_sync(0xffffffffu, any);
    below = warp_max(any ? below : 0ull);
    boundary = found ? below : ~0ull;  // no block below the fully kept ones
    before = base + (lo == 0 ? 0.0 : weight_above(lo - 1));
  }
  unsigned long long kept = 0;
  double tied_before = 0.0;
#pragma unroll
  for (int c = 0; c < kItems && c * kKeyChunk < candidates; ++c) {
    const bool at_boundary = valid(c) && key_of(c) == boundary;
    const double own = at_boundary ? (counting ? 1.0 : prob[c]) : 0.0;
    double prefix = own;  // inclusive scan over the lanes of this column (index order)
    for (int offset = 1; offset < 32; offset *= 2) {
      const double other = __shfl_up_sync(0xffffffffu, prefix, offset);
      if (lane >= offset) prefix += other;
    }
    const double ranked_before = before + tied_before + (prefix - own);
    const bool keep = inclusive ? (valid(c) && key_of(c) >= lo && key_of(c) != boundary) ||
                                      (at_boundary && ranked_before + own <= threshold)
                                : (valid(c) && key_of(c) > lo) || (at_boundary && ranked_before < threshold);
    if (keep) kept |= 1ull << c;
    tied_before += __shfl_sync(0xffffffffu, prefix, 31);
  }
  if (rule == kT4 && !__any_sync(0xffffffffu, kept != 0) && candidates > 0) {  // the top block, lowest index first
    int first = 1 << 30;
#pragma unroll
    for (int c = 0; c < kItems && c * kKeyChunk < candidates; ++c)
      if (valid(c) && key_of(c) == top) first = min(first, c * kKeyChunk + lane);
    for (int offset = 16; offset > 0; offset /= 2) first = min(first, __shfl_xor_sync(0xffffffffu, first, offset));
    if (first < (1 << 30) && first % kKeyChunk == lane) kept |= 1ull << (first / kKeyChunk);
  }
  return kept;
}

// The best-ranked candidate (highest score, lowest index) among v < `candidates` outside `excluded`, as a
// one-bit set in its lane (no bit when there is none).
template <int kItems>
__device__ unsigned long long best_outside(const double (&score)[kItems], int candidates, unsigned long long excluded) {
  const int lane = threadIdx.x % 32;
  unsigned long long best = 0;
  int best_index = 1 << 30;
#pragma unroll
  for (int c = 0; c < kItems && c * kKeyChunk < candidates; ++c) {
    const unsigned long long key = static_cast<unsigned long long>(__double_as_longlong(score[c]));
    const int v = c * kKeyChunk + lane;
    if (v < candidates && !((excluded >> c) & 1ull) && (best_index == 1 << 30 || key > best)) {
      best = key;
      best_index = v;
    }
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    const unsigned long long other = __shfl_xor_sync(0xffffffffu, best, offset);
    const int other_index = __shfl_xor_sync(0xffffffffu, best_index, offset);
    const bool take = other_index != (1 << 30) &&
                      (best_index == (1 << 30) || other > best || (other == best && other_index < best_index));
    best = take ? other : best;
    best_index = take ? other_index : best_index;
  }
  return best_index != (1 << 30) && best_index % kKeyChunk == lane ? 1ull << (best_index / kKeyChunk) : 0ull;
}

// The one-bit set of block v in its lane.
__device__ inline unsigned long long block_bit(int v) {
  return v >= 0 && v % kKeyChunk == static_cast<int>(threadIdx.x % 32) ? 1ull << (v / kKeyChunk) : 0ull;
}

// The blocks v < `end` as a set.
template <int kItems>
__device__ unsigned long long blocks_below(int end) {
  const int lane = threadIdx.x % 32;
  unsigned long long bits = 0;
#pragma unroll
  for (int c = 0; c < kItems; ++c)
    if (c * kKeyChunk + lane < end) bits |= 1ull << c;
  return bits;
}

// Writes a kept set as one canonical mask row: ascending indices, zeros after the count (nk entries).
template <int kItems>
__device__ void write_mask_row(unsigned long long kept, int nk, std::int32_t* indices, std::int32_t* count_out) {
  const int lane = threadIdx.x % 32;
  int count = 0;
#pragma unroll
  for (int c = 0; c < kItems; ++c) {
    const unsigned ballot = __ballot_sync(0xffffffffu, (kept >> c) & 1ull);
    if ((kept >> c) & 1ull) indices[count + __popc(ballot & ((1u << lane) - 1u))] = c * kKeyChunk + lane;
    count += __popc(ballot);
  }
  for (int i = count + lane; i < nk; i += 32) indices[i] = 0;
  if (lane == 0) *count_out = count;
}

}  // namespace sparsefill::cuda::select
