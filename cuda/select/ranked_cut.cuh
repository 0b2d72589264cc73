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

// The n-th (from 0) set bit of a 32-bit mask that has more than n.
__device__ inline int nth_set_bit(unsigned mask, int n) {
  int position = 0;
  for (int width = 16; width > 0; width /= 2) {
    const int low = __popc(mask & ((1u << width) - 1u));
    if (n >= low) {
      n -= low;
      mask >>= width;
      position += width;
    }
  }
  return position;
}

// The kept blocks of one ranked row (see Rule) among the candidates v < `candidates` that are not in
// `excluded`. Scores must be non-negative (their 64-bit patterns are then monotone). `base` is mass counted as
// ranked before every candidate (T3's forced blocks). With W(K) the weight (score, or 1 for top-k) of the
// candidates whose pattern exceeds K, a binary search over patterns finds where the kept prefix ends.
//
// The search runs first over coarse keys (pattern >> kCoarseBits: the exponent and the top mantissa bits): every
// block of a coarse key above the boundary's is kept, every one below it dropped, and the few blocks that share
// the boundary's coarse key are ranked exactly against each other, one per lane (their order: pattern, then the
// lower index). A boundary shared by more than 32 blocks (near-uniform rows) falls back to the search over whole
// patterns, whose ties an in-order scan settles.
inline constexpr int kCoarseBits = 44;

template <int kItems>
__device__ unsigned long long cut(const double (&prob)[kItems], int candidates, unsigned long long excluded, int rule,
                                  double threshold, double base) {
  const int lane = threadIdx.x % 32;
  const bool counting = rule == kTopK, inclusive = rule == kT4 || rule == kT5;
  auto valid = [&](int c) { return c * kKeyChunk + lane < candidates && !((excluded >> c) & 1ull); };
  auto key_of = [&](int c) { return static_cast<unsigned long long>(__double_as_longlong(prob[c])); };
  auto weight = [&](double score) { return counting ? 1.0 : score; };
  auto weight_above = [&](unsigned long long key) {
    double w = 0.0;
#pragma unroll
    for (int c = 0; c < kItems && c * kKeyChunk < candidates; ++c) w += valid(c) && key_of(c) > key ? weight(prob[c]) : 0.0;
    return warp_sum(w);
  };
  unsigned long long top = 0, bottom = ~0ull;  // the largest and smallest candidate patterns
  double mass = 0.0;
#pragma unroll
  for (int c = 0; c < kItems && c * kKeyChunk < candidates; ++c) {
    top = valid(c) && key_of(c) > top ? key_of(c) : top;
    bottom = valid(c) && key_of(c) < bottom ? key_of(c) : bottom;
    mass += valid(c) ? prob[c] : 0.0;
  }
  top = warp_max(top);
  bottom = ~warp_max(~bottom);
  if (bottom > top) bottom = 0;  // no candidate
  const double total = warp_sum(mass);
  if (rule == kT2 && !(base + total >= threshold)) return 0;  // T2: the mass never reaches p
  // Exclusive rules: the smallest K (in units of 2^bits) with base + W(K) < threshold, W over keys >> bits; the
  // boundary blocks have key K. Inclusive rules: the smallest K with base + (the weight at or above K) <=
  // threshold; the boundary blocks have the largest key below K. Below the smallest candidate key every K
  // weighs the whole row, so the search may start there: where the whole row fits, K = that key keeps every
  // block as K = 0 would.
  auto search = [&](int bits) {
    const unsigned long long low_bits = (1ull << bits) - 1;
    unsigned long long lo = bottom >> bits, hi = (top >> bits) + 1;
    while (lo < hi) {
      const unsigned long long mid = lo + (hi - lo) / 2;
      const bool fits = inclusive ? base + (mid == 0 ? total : weight_above((mid << bits) - 1)) <= threshold
                                  : base + weight_above((mid << bits) | low_bits) < threshold;
      if (fits) hi = mid; else lo = mid + 1;
    }
    return lo;
  };
  // The largest key (>> bits) of a candidate below K, or none (~0).
  auto largest_below = [&](unsigned long long k, int bits) {
    unsigned long long below = 0;
    bool any = false;
#pragma unroll
    for (int c = 0; c < kItems && c * kKeyChunk < candidates; ++c) {
      if (valid(c) && (key_of(c) >> bits) < k) {
        below = any && below > (key_of(c) >> bits) ? below : key_of(c) >> bits;
        any = true;
      }
    }
    const bool found = __any_sync(0xffffffffu, any);
    below = warp_max(any ? below : 0ull);
    return found ? below : ~0ull;
  };
  const unsigned long long coarse = search(kCoarseBits);
  const unsigned long long boundary = inclusive ? largest_below(coarse, kCoarseBits) : coarse;
  const double before = base + (inclusive ? (coarse == 0 ? total : weight_above((coarse << kCoarseBits) - 1))
                                          : weight_above((coarse << kCoarseBits) | ((1ull << kCoarseBits) - 1)));
  auto surely_kept = [&](int c) {
    return valid(c) && (inclusive ? (key_of(c) >> kCoarseBits) >= coarse : (key_of(c) >> kCoarseBits) > coarse);
  };
  auto at_boundary = [&](int c) { return valid(c) && (key_of(c) >> kCoarseBits) == boundary; };
  int shared_boundary = 0;
#pragma unroll
  for (int c = 0; c < kItems && c * kKeyChunk < candidates; ++c) shared_boundary += __popc(__ballot_sync(0xffffffffu, at_boundary(c)));
  unsigned long long kept = 0;
  if (shared_boundary <= 32) {
    // Gather the boundary blocks, one per lane in index order; rank each against the others; scatter back.
    double score = 0.0;
    int index = 1 << 30, slot = 0;
#pragma unroll
    for (int c = 0; c < kItems && c * kKeyChunk < candidates; ++c) {
      const unsigned ballot = __ballot_sync(0xffffffffu, at_boundary(c));
      const int n = __popc(ballot), mine = lane - slot;
      const int source = mine >= 0 && mine < n ? nth_set_bit(ballot, mine) : 0;
      const double moved = __shfl_sync(0xffffffffu, prob[c], source);
      if (mine >= 0 && mine < n) {
        score = moved;
        index = c * kKeyChunk + source;
      }
      if (surely_kept(c)) kept |= 1ull << c;
      slot += n;
    }
    const unsigned long long key = static_cast<unsigned long long>(__double_as_longlong(score));
    double ahead = 0.0;
    for (int j = 0; j < shared_boundary; ++j) {
      const unsigned long long other = __shfl_sync(0xffffffffu, key, j);
      const int other_index = __shfl_sync(0xffffffffu, index, j);
      const double other_score = __shfl_sync(0xffffffffu, score, j);
      ahead += other > key || (other == key && other_index < index) ? weight(other_score) : 0.0;
    }
    const bool keep = lane < shared_boundary &&
                      (inclusive ? before + ahead + weight(score) <= threshold : before + ahead < threshold);
    slot = 0;
#pragma unroll
    for (int c = 0; c < kItems && c * kKeyChunk < candidates; ++c) {
      const unsigned ballot = __ballot_sync(0xffffffffu, at_boundary(c));
      const int position = slot + __popc(ballot & ((1u << lane) - 1u));
      const bool kept_here = __shfl_sync(0xffffffffu, keep, position & 31);
      if (at_boundary(c) && kept_here) kept |= 1ull << c;
      slot += __popc(ballot);
    }
  } else {
    // The search over whole patterns; only blocks of exactly the boundary pattern need the tie rule (lower index
    // first), which an in-order scan settles.
    const unsigned long long lo = search(0);
    const unsigned long long exact = inclusive ? largest_below(lo, 0) : lo;
    double ranked = base + (inclusive ? (lo == 0 ? total : weight_above(lo - 1)) : weight_above(lo));
#pragma unroll
    for (int c = 0; c < kItems && c * kKeyChunk < candidates; ++c) {
      const bool tied = valid(c) && key_of(c) == exact;
      const double own = tied ? weight(prob[c]) : 0.0;
      double prefix = own;  // inclusive scan over the lanes of this column (index order)
      for (int offset = 1; offset < 32; offset *= 2) {
        const double other = __shfl_up_sync(0xffffffffu, prefix, offset);
        if (lane >= offset) prefix += other;
      }
      const double ranked_before = ranked + (prefix - own);
      const bool keep = inclusive ? (valid(c) && key_of(c) >= lo && key_of(c) != exact) ||
                                        (tied && ranked_before + own <= threshold)
                                  : (valid(c) && key_of(c) > lo) || (tied && ranked_before < threshold);
      if (keep) kept |= 1ull << c;
      ranked += __shfl_sync(0xffffffffu, prefix, 31);
    }
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
