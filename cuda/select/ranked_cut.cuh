// Warp-level selection rules over one mask row (shared by every GPU selector).
//
// A row's scores sit in memory (shared memory in the kernels) and a warp reads them by lane: lane l takes the
// blocks v = 32 c + l (c < kItems); a set of blocks is a 64-bit mask per lane (bit c: block 32 c + l). The
// cumulative rules of algorithms.md §0.2 keep a prefix of the row ranked by score (ties by the lower block
// index, as the CPU's stable sort), so only the prefix's end has to be found, not the whole order.
//
// cut() finds it by a radix select over the scores' 64-bit patterns (monotone for non-negative doubles): a
// histogram of the candidates' weights over 256 bins of the pattern's top bits (16 bins a binade, so the bins
// follow the score's magnitude) gives the bin where the running weight from the top crosses the threshold;
// an exact fp64 sum of the weight above that bin confirms it (the histogram's fixed-point weights are only
// approximate) or moves to the next bin; the blocks of that bin, at most 32 of them, are ranked exactly
// against each other, one per lane; a fuller bin is split again by the next 8 pattern bits. A row thus costs
// a few passes over its blocks instead of one per bit of a binary search. Reductions run in another order
// than the CPU's sequential sums, so a decision can differ only where a mass lies within rounding of the
// threshold; every sum runs in a fixed order, so the result is the same on every run.
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

// The pattern of a non-negative double, monotone in its value.
__device__ inline unsigned long long pattern_of(double x) {
  return static_cast<unsigned long long>(__double_as_longlong(x));
}

inline constexpr int kCutBins = 256;
inline constexpr int kCutFirstShift = 48;  // the first level's bins: pattern >> 48 (exponent, 4 mantissa bits)
inline constexpr int kCutShiftStep = 8;    // each further level splits a bin by the next 8 bits

// One warp's shared scratch for cut(): the histogram, the boundary bin's blocks (index order) and the kept
// flags of those blocks (word c, bit l: block 32 c + l).
struct CutScratch {
  unsigned bins[kCutBins];
  double value[kKeyChunk];
  int index[kKeyChunk];
  unsigned flags[64];
};

// The candidates of one row for cut(): their set (this lane's), lane columns, total weight and top pattern;
// `binned`: the scratch's bins already hold cut()'s first histogram level (see NumeratorRowBuilder).
struct CutRow {
  unsigned long long live;
  int columns;
  double total;
  unsigned long long top;
  bool binned;
};

// A row of softmax numerators exp(x - max) tops at exactly exp(0) = 1 (pattern kNumeratorTop), so its first
// histogram level is known before its total: weights in units of 2^-20 (a row's at most 2048 blocks, each at
// most 2^20 + 1 units, stay below 2^31).
inline constexpr unsigned long long kNumeratorTop = 0x3FF0000000000000ull;
inline constexpr double kNumeratorUnits = 1048576.0;

// The histogram bin of pattern `key` in a level whose range ends at pattern `hi`: bins count down from hi's
// bits above `shift`; everything 255 or more bins below lands in the last (lumped) bin.
__device__ inline int cut_bin(unsigned long long hi, unsigned long long key, int shift) {
  const unsigned long long distance = (hi >> shift) - (key >> shift);
  return static_cast<int>(distance < kCutBins - 1 ? distance : kCutBins - 1);
}

// A candidate's weight in a histogram of fixed-point weights, `units` a unit score: at least one unit, so an
// occupied bin is never empty; the top-k rule counts blocks.
__device__ inline unsigned histogram_units(double x, double units, bool counting) {
  return counting ? 1u : static_cast<unsigned>(x * units) + 1u;
}

// Clears a warp's histogram bins (the warp syncs before they are added to).
__device__ inline void clear_histogram(CutScratch& scratch) {
  for (int i = threadIdx.x % 32; i < kCutBins; i += 32) scratch.bins[i] = 0;
  __syncwarp();
}

// Gathers a CutRow while a pass over the row visits its candidates in column order (add: candidate column c
// of this lane with score x; finish: the warp's totals), so that a pass that writes the scores can provide
// it.
struct CutRowBuilder {
  bool counting;  // the top-k rule: every candidate weighs 1
  unsigned long long live = 0, top = 0;
  double local = 0.0;
  __device__ explicit CutRowBuilder(bool counting_rule) : counting(counting_rule) {}
  __device__ void add(int c, double x) {
    live |= 1ull << c;
    local += counting ? 1.0 : x;
    top = pattern_of(x) > top ? pattern_of(x) : top;
  }
  __device__ CutRow finish(int columns) const {
    return {live, columns, warp_sum(local), warp_max(top), false};
  }
};

// The CutRow of a row of softmax numerators exp(x - max), gathered while the pass that computes them visits
// the candidates (the set `live` given by the caller): their sum (or count: top-k), and with `bins` (cleared
// by clear_histogram) cut()'s first histogram level, saving cut() that pass over the row. The numerators are
// at most 1 and the top is exactly 1, so the largest pattern's high word settles the top pattern: 1's high
// word can only be 1 itself. A row without a numerator of exactly 1 (NaN or infinite logits) takes its exact
// top by a pass in finish() and leaves the histogram to cut().
struct NumeratorRowBuilder {
  bool counting;  // the top-k rule: every candidate weighs 1
  unsigned* bins;
  double units;  // histogram units a numerator (0 when counting: one unit a candidate)
  unsigned top_word = 0;
  double local = 0.0;
  __device__ NumeratorRowBuilder(bool counting_rule, unsigned* numerator_bins)
      : counting(counting_rule), bins(numerator_bins), units(counting_rule ? 0.0 : kNumeratorUnits) {}
  __device__ void add(double x) {
    const auto word = static_cast<unsigned>(pattern_of(x) >> 32);
    local += x;
    top_word = word > top_word ? word : top_word;
    if (bins != nullptr) {
      // cut_bin(kNumeratorTop, pattern, kCutFirstShift) and histogram_units, on the high word
      const unsigned distance =
          static_cast<unsigned>(kNumeratorTop >> kCutFirstShift) - (word >> (kCutFirstShift - 32));
      atomicAdd(&bins[distance < kCutBins - 1 ? distance : kCutBins - 1],
                static_cast<unsigned>(x * units) + 1u);
    }
  }
  // live: the candidates added (this lane's); row[c * kKeyChunk + lane]: the numerators, read only by the
  // exact pass.
  __device__ CutRow finish(const double* row, unsigned long long live, int columns) const {
    const double total = counting ? static_cast<double>(warp_count(live)) : warp_sum(local);
    if (warp_max(static_cast<unsigned long long>(top_word)) == kNumeratorTop >> 32)
      return {live, columns, total, kNumeratorTop, bins != nullptr};
    const int lane = threadIdx.x % 32;
    unsigned long long top = 0;
    for (int c = 0; c < columns; ++c)
      if ((live >> c) & 1ull)
        top = pattern_of(row[c * kKeyChunk + lane]) > top ? pattern_of(row[c * kKeyChunk + lane]) : top;
    return {live, columns, total, warp_max(top), false};
  }
};

// The CutRow of the candidates v < `candidates` outside `excluded` of row (scores row[v]) for `rule`.
template <int kItems>
__device__ CutRow cut_row(const double* row, int candidates, unsigned long long excluded, int rule) {
  const int lane = threadIdx.x % 32, columns = min(kItems, (candidates + kKeyChunk - 1) / kKeyChunk);
  CutRowBuilder builder(rule == kTopK);
  for (int c = 0; c < columns; ++c)
    if (c * kKeyChunk + lane < candidates && !((excluded >> c) & 1ull)) builder.add(c, row[c * kKeyChunk + lane]);
  return builder.finish(columns);
}

// The kept blocks of one ranked row (see Rule) among the candidates of `r`; row[v] are the scores
// (non-negative; entries of other blocks are never read). `base` is mass counted as ranked before every
// candidate (T3's forced blocks).
template <int kItems>
__device__ unsigned long long cut(const double* row, const CutRow& r, int rule, double threshold, double base,
                                  CutScratch& scratch) {
  static_assert(kItems <= 64 && kItems % 4 == 0, "a set is a 64-bit mask per lane, read 4 columns at a time");
  const int lane = threadIdx.x % 32, columns = r.columns;
  const bool counting = rule == kTopK, inclusive = rule == kT4 || rule == kT5;
  auto weight = [&](double score) { return counting ? 1.0 : score; };
  const unsigned long long live = r.live;
  const double total = r.total;
  const unsigned long long top = r.top;
  if (!__any_sync(0xffffffffu, live != 0)) return 0;
  if (rule == kT2 && !(base + total >= threshold)) return 0;  // T2: the mass never reaches p
  // The boundary block z: exclusive rules keep every block up to and including the first whose cumulative
  // weight (from the top, plus base) reaches the threshold; inclusive rules keep every block before the
  // first whose cumulative weight exceeds it. Rows that keep all or nothing have no boundary.
  const bool keep_all = inclusive ? base + total <= threshold : base + total < threshold;
  const bool keep_none = inclusive ? base > threshold : !(base < threshold);
  unsigned long long kept = keep_all ? live : 0ull;
  if (!keep_all && !keep_none) {
    // Histogram units a unit score: kNumeratorUnits in the numerators' prebuilt first level; a level built
    // here puts 2^31 in the total.
    bool binned = r.binned;
    double units = counting ? 1.0 : kNumeratorUnits;
    // The crossing test of z's position: is z at or before a point whose cumulative weight is `mass`?
    auto reached = [&](double mass) { return inclusive ? base + mass > threshold : base + mass >= threshold; };
    unsigned long long hi = top, lo = 0;  // the pattern range of this level, all of it below the kept part
    int shift = kCutFirstShift;
    double above = 0.0;  // exact weight of the candidates above the range
    for (;;) {
      auto bin_of = [&](unsigned long long key) { return cut_bin(hi, key, shift); };
      auto in_range = [&](unsigned long long key) { return key >= lo && key <= hi; };
      if (!binned) {
        if (!counting) units = 2147483648.0 / total;
        clear_histogram(scratch);
        for (int c0 = 0; c0 < columns; c0 += 4) {  // 4 columns' loads in flight before their atomics
          double x[4];
#pragma unroll
          for (int j = 0; j < 4; ++j)
            x[j] = (live >> (c0 + j)) & 1ull ? row[(c0 + j) * kKeyChunk + lane] : 0.0;
#pragma unroll
          for (int j = 0; j < 4; ++j)
            if (((live >> (c0 + j)) & 1ull) && in_range(pattern_of(x[j])))
              atomicAdd(&scratch.bins[bin_of(pattern_of(x[j]))], histogram_units(x[j], units, counting));
        }
      }
      binned = false;
      __syncwarp();
      // The approximate boundary bin: the first whose cumulative units reach the remaining weight. Lane l
      // holds bins 8 l .. 8 l + 7.
      const double remaining = (threshold - base - above) * units;
      unsigned count[8];
      unsigned lane_total = 0;
#pragma unroll
      for (int j = 0; j < 8; ++j) lane_total += count[j] = scratch.bins[8 * lane + j];
      unsigned before = lane_total;  // inclusive scan over the lanes, then made exclusive
      for (int offset = 1; offset < 32; offset *= 2) {
        const unsigned other = __shfl_up_sync(0xffffffffu, before, offset);
        if (lane >= offset) before += other;
      }
      before -= lane_total;
      int first = kCutBins, last = -1;
      unsigned running = before;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        running += count[j];
        const bool crossed = inclusive ? running > remaining : running >= remaining;
        if (crossed && first == kCutBins) first = 8 * lane + j;
        if (count[j] > 0) last = 8 * lane + j;
      }
      for (int offset = 16; offset > 0; offset /= 2) {
        first = min(first, __shfl_xor_sync(0xffffffffu, first, offset));
        last = max(last, __shfl_xor_sync(0xffffffffu, last, offset));
      }
      int boundary = first < kCutBins ? first : last;
      // Confirm the bin with exact sums (moving to the neighbouring occupied bin while it does not hold z),
      // collecting its blocks in index order.
      unsigned long long level_kept = 0, in_bin = 0;
      double bin_above = 0.0, bin_weight = 0.0;
      int in_boundary = 0, moved = 0;
      for (;;) {
        double a = 0.0, w = 0.0;
        level_kept = in_bin = 0;
        in_boundary = 0;
        unsigned long long bin_top = 0;
        for (int c0 = 0; c0 < columns;
             c0 += 4) {  // 4 columns' loads in flight (columns past the row are empty)
          double xs[4];
#pragma unroll
          for (int j = 0; j < 4; ++j)
            xs[j] = (live >> (c0 + j)) & 1ull ? row[(c0 + j) * kKeyChunk + lane] : 0.0;
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const int c = c0 + j;
            const bool candidate = (live >> c) & 1ull;
            const double x = xs[j];
            const unsigned long long key = pattern_of(x);
            const int bin = candidate && in_range(key) ? bin_of(key) : -1;
            if (bin >= 0 && bin < boundary) {
              level_kept |= 1ull << c;
              a += weight(x);
            }
            const bool here = bin == boundary;
            const unsigned ballot = __ballot_sync(0xffffffffu, here);
            if (here) {
              in_bin |= 1ull << c;
              w += weight(x);
              bin_top = key > bin_top ? key : bin_top;
              const int slot = in_boundary + __popc(ballot & ((1u << lane) - 1u));
              if (slot < kKeyChunk) {
                scratch.value[slot] = x;
                scratch.index[slot] = c * kKeyChunk + lane;
              }
            }
            in_boundary += __popc(ballot);
          }
        }
        bin_above = warp_sum(a);
        bin_weight = warp_sum(w);
        const int direction = reached(above + bin_above) ? -1 : !reached(above + bin_above + bin_weight) ? 1 : 0;
        // A move back after a move forth means both bins lie within rounding of the threshold: keep this one.
        if (direction == 0 || direction == -moved) {
          if (boundary == kCutBins - 1) hi = warp_max(bin_top);  // the lumped bin: split below its top
          break;
        }
        int next = boundary + direction;
        while (next >= 0 && next < kCutBins && scratch.bins[next] == 0) next += direction;
        if (next < 0 || next >= kCutBins) break;
        boundary = next;
        moved = direction;
      }
      kept |= level_kept;
      __syncwarp();
      if (in_boundary <= kKeyChunk) {
        // Rank the bin's blocks exactly against each other, one per lane.
        for (int i = lane; i < 64; i += 32) scratch.flags[i] = 0;
        __syncwarp();
        const double ranked_above = above + bin_above;
        if (lane < in_boundary) {
          const double x = scratch.value[lane];
          const int v = scratch.index[lane];
          double ahead = 0.0;
          for (int j = 0; j < in_boundary; ++j) {
            const double other = scratch.value[j];
            ahead += other > x || (other == x && scratch.index[j] < v) ? weight(other) : 0.0;
          }
          const bool keep = inclusive ? base + ranked_above + ahead + weight(x) <= threshold
                                      : base + ranked_above + ahead < threshold;
          if (keep) atomicOr(&scratch.flags[v / kKeyChunk], 1u << (v % kKeyChunk));
        }
        __syncwarp();
        for (unsigned long long left = in_bin; left != 0;
             left &= left - 1) {  // this lane's blocks of the bin
          const int c = __ffsll(static_cast<long long>(left)) - 1;
          if ((scratch.flags[c] >> lane) & 1u) kept |= 1ull << c;
        }
        break;
      }
      above += bin_above;
      if (shift == 0 && boundary < kCutBins - 1) {
        // More than 32 blocks of one pattern: equal scores, ranked by index. An in-order scan settles them.
        const double w = counting ? 1.0 : scratch.value[0];
        double ranked = base + above;
        for (int c = 0; c < columns; ++c) {
          const bool tied = (in_bin >> c) & 1ull;
          const unsigned ballot = __ballot_sync(0xffffffffu, tied);
          const double ranked_before = ranked + w * __popc(ballot & ((1u << lane) - 1u));
          if (tied && (inclusive ? ranked_before + w <= threshold : ranked_before < threshold)) kept |= 1ull << c;
          ranked += w * __popc(ballot);
        }
        break;
      }
      // Split the boundary bin: a regular bin by its next bits; the lumped last bin below its top pattern.
      // (The lumped bin keeps its shift; hi became its top pattern above.)
      if (boundary < kCutBins - 1) {
        lo = ((hi >> shift) - static_cast<unsigned long long>(boundary)) << shift;
        hi = lo | ((1ull << shift) - 1);
        shift -= kCutShiftStep;
      }
      __syncwarp();
    }
  }
  if (rule == kT4 && !__any_sync(0xffffffffu, kept != 0)) {  // the top block, lowest index first
    int first = 1 << 30;
    for (int c = 0; c < columns; ++c)
      if (((live >> c) & 1ull) && pattern_of(row[c * kKeyChunk + lane]) == top) first = min(first, c * kKeyChunk + lane);
    for (int offset = 16; offset > 0; offset /= 2) first = min(first, __shfl_xor_sync(0xffffffffu, first, offset));
    if (first < (1 << 30) && first % kKeyChunk == lane) kept |= 1ull << (first / kKeyChunk);
  }
  return kept;
}

// cut() of the candidates v < `candidates` outside `excluded`.
template <int kItems>
__device__ unsigned long long cut(const double* row, int candidates, unsigned long long excluded, int rule,
                                  double threshold, double base, CutScratch& scratch) {
  return cut<kItems>(row, cut_row<kItems>(row, candidates, excluded, rule), rule, threshold, base, scratch);
}

// The best-ranked candidate (highest score, lowest index) among v < `candidates` outside `excluded`, as a
// one-bit set in its lane (no bit when there is none).
template <int kItems>
__device__ unsigned long long best_outside(const double* row, int candidates, unsigned long long excluded) {
  const int lane = threadIdx.x % 32;
  unsigned long long best = 0;
  int best_index = 1 << 30;
  for (int c = 0; c < kItems && c * kKeyChunk < candidates; ++c) {
    const int v = c * kKeyChunk + lane;
    if (v >= candidates || ((excluded >> c) & 1ull)) continue;
    const unsigned long long key = pattern_of(row[v]);
    if (best_index == 1 << 30 || key > best) {
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

// The sum over a set's blocks of row[v], the same in every lane.
template <int kItems>
__device__ double set_sum(const double* row, unsigned long long set) {
  const int lane = threadIdx.x % 32;
  double local = 0.0;
  for (int c = 0; c < kItems; ++c)
    if ((set >> c) & 1ull) local += row[c * kKeyChunk + lane];
  return warp_sum(local);
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
  // The zeros after the count: single entries up to a 16-byte boundary, then 16 bytes a lane, then the tail.
  struct alignas(16) FourIndices {
    std::int32_t v[4];
  };
  std::int32_t* zeros = indices + count;
  const int left = nk - count;
  const int head = min(left, static_cast<int>((16 - reinterpret_cast<std::uintptr_t>(zeros) % 16) % 16 / 4));
  const int fours = (left - head) / 4;
  if (lane < head) zeros[lane] = 0;
  for (int i = lane; i < fours; i += 32) reinterpret_cast<FourIndices*>(zeros + head)[i] = FourIndices{};
  for (int i = head + 4 * fours + lane; i < left; i += 32) zeros[i] = 0;
  if (lane == 0) *count_out = count;
}

}  // namespace sparsefill::cuda::select
