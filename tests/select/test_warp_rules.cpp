// The warp-level rules of the GPU selectors (cuda/select/ranked_cut.cuh), compiled for the host and run on an
// emulated warp (support/device_emulator.hpp), against the CPU's threshold rules (src/select/top_p_rules.hpp) on
// fresh random rows: softmax-like rows, rows of dyadic scores (every sum exact, many exact ties), rows of equal
// or nearly equal scores (more than 32 blocks share the boundary), one dominant block; every rule, excluded
// blocks, a base mass (T3's forced blocks), capacities of 8 and 32 blocks per lane. Blocks past the candidates
// hold garbage that the rules must ignore. With dyadic rows the CPU's and the warp's sums are exact, so the kept
// sets must be equal whatever the summation order; with continuous rows a flip would need a prefix mass within
// rounding of the threshold (never seen; the test would print the row's seed).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "select/top_p_rules.hpp"
#include "support/random_tensors.hpp"
#include "support/device_emulator.hpp"

#include "select/ranked_cut.cuh"

namespace sparsefill {
namespace {

using Blocks = std::vector<std::int32_t>;
namespace gpu = cuda::select;

struct Row {
  std::vector<double> scores;  // every slot of the capacity; past `candidates`: garbage
  int candidates = 0;
  std::vector<bool> excluded;  // per slot
};

// Lane l takes blocks v = 32 c + l, as the kernels do: its excluded set.
template <int kItems>
unsigned long long excluded_of(const Row& row) {
  const int lane = static_cast<int>(threadIdx.x);
  unsigned long long excluded = 0;
  for (int c = 0; c < kItems; ++c)
    if (row.excluded[static_cast<std::size_t>(c * gpu::kKeyChunk + lane)]) excluded |= 1ull << c;
  return excluded;
}

Blocks blocks_of(const std::vector<unsigned long long>& kept_by_lane) {
  Blocks blocks;
  for (int c = 0; c < 64; ++c)
    for (int lane = 0; lane < 32; ++lane)
      if ((kept_by_lane[static_cast<std::size_t>(lane)] >> c) & 1ull) blocks.push_back(c * gpu::kKeyChunk + lane);
  std::sort(blocks.begin(), blocks.end());
  return blocks;
}

// How cut() gets its row: from cut_row (the selectors' generic path), or from a NumeratorRowBuilder that
// builds the first histogram level of a row of softmax numerators (top score exactly 1) as it visits the
// candidates, as the row kernel's exp pass does; kBuilderUnscaled hands the builder rows that do not top at
// exactly 1 (a numerator row of NaN or infinite logits), which it must leave unbinned with their exact top.
enum class Entry { kScan, kNumeratorBins, kBuilderUnscaled };

template <int kItems>
Blocks warp_cut(const Row& row, int rule, double threshold, double base, Entry entry = Entry::kScan) {
  std::vector<unsigned long long> kept(32, 0);
  gpu::CutScratch scratch;  // the warp's shared scratch
  testing::emulated::run_warp([&] {
    const int lane = static_cast<int>(threadIdx.x);
    const unsigned long long excluded = excluded_of<kItems>(row);
    gpu::CutRow r{};
    if (entry == Entry::kScan) {
      r = gpu::cut_row<kItems>(row.scores.data(), row.candidates, excluded, rule);
    } else {
      for (int i = lane; i < gpu::kCutBins; i += 32) scratch.bins[i] = 0;
      __syncwarp();
      gpu::NumeratorRowBuilder builder(rule == gpu::kTopK, scratch.bins);
      const int columns = std::min(kItems, (row.candidates + gpu::kKeyChunk - 1) / gpu::kKeyChunk);
      unsigned long long live = 0;
      for (int c = 0; c < columns; ++c)
        if (c * gpu::kKeyChunk + lane < row.candidates && !((excluded >> c) & 1ull)) {
          live |= 1ull << c;
          builder.add(row.scores[static_cast<std::size_t>(c * gpu::kKeyChunk + lane)]);
        }
      r = builder.finish(row.scores.data(), live, columns);
      if (lane == 0)
        EXPECT_EQ(r.binned, r.top == gpu::kNumeratorTop) << "binned exactly when the row tops at 1";
      if (lane == 0 && entry == Entry::kNumeratorBins && r.top != 0)
        EXPECT_TRUE(r.binned) << "numerators top at 1";
    }
    kept[threadIdx.x] = gpu::cut<kItems>(row.scores.data(), r, rule, threshold, base, scratch);
  });
  return blocks_of(kept);
}

Blocks candidate_list(const Row& row) {
  Blocks list;
  for (int v = 0; v < row.candidates; ++v)
    if (!row.excluded[static_cast<std::size_t>(v)]) list.push_back(v);
  return list;
}

enum class Shape { kSoftmax, kDyadic, kEqual, kNearlyEqual, kDominant };
const char* name_of(Shape s) {
  switch (s) {
    case Shape::kSoftmax: return "softmax";
    case Shape::kDyadic: return "dyadic";
    case Shape::kEqual: return "equal";
    case Shape::kNearlyEqual: return "nearly equal";
    case Shape::kDominant: return "dominant";
  }
  return "?";
}

Row random_row(std::mt19937_64& rng, int capacity, Shape shape, bool with_exclusions) {
  Row row;
  row.scores.assign(static_cast<std::size_t>(capacity), 0.0);
  row.excluded.assign(static_cast<std::size_t>(capacity), false);
  const int sizes[] = {0, 1, 2, 31, 32, 33, 64};
  row.candidates = rng() % 3 == 0 ? sizes[rng() % 7] : 1 + static_cast<int>(rng() % static_cast<unsigned>(capacity));
  row.candidates = std::min(row.candidates, capacity);
  std::normal_distribution<double> normal;
  const double temperature = 0.5 + 4.0 * std::uniform_real_distribution<double>()(rng);
  for (int v = 0; v < capacity; ++v) {
    double& s = row.scores[static_cast<std::size_t>(v)];
    if (v >= row.candidates) {
      s = 1e3 * std::uniform_real_distribution<double>()(rng);  // garbage the rules must not read
      continue;
    }
    switch (shape) {
      case Shape::kSoftmax: s = std::exp(temperature * normal(rng)); break;
      case Shape::kDyadic: s = static_cast<double>(rng() % 9) / 1024.0; break;
      case Shape::kEqual: s = 1.0 / 64; break;
      case Shape::kNearlyEqual: s = (1.0 + 1e-9 * static_cast<double>(rng() % 1000)) / 64; break;
      case Shape::kDominant: s = v == static_cast<int>(rng() % static_cast<unsigned>(row.candidates)) ? 1.0 : 1e-6; break;
    }
    if (with_exclusions && rng() % 7 == 0) row.excluded[static_cast<std::size_t>(v)] = true;
  }
  return row;
}

double candidate_mass(const Row& row) {
  double total = 0;
  for (int v : candidate_list(row)) total += row.scores[static_cast<std::size_t>(v)];
  return total;
}

// The row divided by its top candidate score, as softmax numerators exp(x - max) are (the top exactly 1).
Row as_numerators(Row row) {
  double top = 0;
  for (int v : candidate_list(row)) top = std::max(top, row.scores[static_cast<std::size_t>(v)]);
  if (top > 0)
    for (int v = 0; v < row.candidates; ++v) row.scores[static_cast<std::size_t>(v)] /= top;
  return row;
}

template <int kItems>
void check_rules_on_random_rows(int trials) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const Shape shapes[] = {Shape::kSoftmax, Shape::kDyadic, Shape::kEqual, Shape::kNearlyEqual, Shape::kDominant};
  for (int trial = 0; trial < trials; ++trial) {
    const Shape shape = shapes[trial % 5];
    const Row scanned = random_row(rng, kItems * gpu::kKeyChunk, shape, rng() % 2 == 0);
    const Blocks candidates = candidate_list(scanned);
    // A dyadic threshold (a multiple of 1/1024 of the total's scale) keeps dyadic rows exact. Thresholds are
    // positive, as the selectors' settings require (T2 keeps the top block at a threshold of 0, T1 none).
    const double dyadic_fraction = static_cast<double>(1 + rng() % 1100) / 1024.0;
    const double fraction = std::uniform_real_distribution<double>(1e-6, 1.05)(rng);
    const std::int64_t k = static_cast<std::int64_t>(rng() % static_cast<unsigned>(scanned.candidates + 3));
    for (const Entry entry : {Entry::kScan, Entry::kNumeratorBins, Entry::kBuilderUnscaled}) {
      // Dyadic rows scaled to a top of 1 are no longer dyadic: the numerator entry leaves them out.
      if (entry == Entry::kNumeratorBins && shape == Shape::kDyadic) continue;
      const Row row = entry == Entry::kNumeratorBins ? as_numerators(scanned) : scanned;
      const double total = candidate_mass(row);
      const double threshold = shape == Shape::kDyadic ? dyadic_fraction * std::max(total, 1.0)
                                                       : fraction * std::max(total, 1e-300);
      const double* s = row.scores.data();
      SCOPED_TRACE("trial " + std::to_string(trial) + " (" + name_of(shape) +
                   (entry == Entry::kScan            ? ""
                    : entry == Entry::kNumeratorBins ? ", numerators"
                                                     : ", unscaled builder") +
                   ", " + std::to_string(row.candidates) + " candidates, threshold " +
                   std::to_string(threshold) + ")");
      EXPECT_EQ((warp_cut<kItems>(row, gpu::kT1, threshold, 0.0, entry)),
                select_t1(s, candidates, threshold, 1.0));
      EXPECT_EQ((warp_cut<kItems>(row, gpu::kT2, threshold, 0.0, entry)),
                select_t2(s, candidates, threshold, 1.0));
      EXPECT_EQ((warp_cut<kItems>(row, gpu::kT4, threshold, 0.0, entry)),
                select_t4(s, candidates, threshold, 1.0));
      EXPECT_EQ((warp_cut<kItems>(row, gpu::kT5, threshold, 0.0, entry)),
                select_t5(s, candidates, threshold, 1.0));
      EXPECT_EQ((warp_cut<kItems>(row, gpu::kTopK, static_cast<double>(k), 0.0, entry)),
                select_top_k(s, candidates, k));
    }
  }
}

TEST(WarpRules, CutEqualsTheCpuRulesWithEightBlocksPerLane) { check_rules_on_random_rows<8>(300); }

TEST(WarpRules, CutEqualsTheCpuRulesWithThirtyTwoBlocksPerLane) { check_rules_on_random_rows<32>(150); }

// A row whose fixed-point histogram points at the wrong bin: 1000 tiny blocks in two bins weigh about 1.4x
// their true mass in the histogram's units (a unit and a floor each; ~500x in the numerators' prebuilt first
// level, whose unit is 2^-20 of the top), so the threshold seems crossed one bin early; the exact sums must
// move the boundary to the next bin. Blocks are shuffled over the row; thresholds sit between two prefixes,
// not within rounding of one. The row tops at 1, so it runs through both entries.
TEST(WarpRules, ExactSumsCorrectTheHistogramsBin) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  Row row;
  row.candidates = 1001;
  row.scores.assign(32 * gpu::kKeyChunk, 0.0);
  row.excluded.assign(32 * gpu::kKeyChunk, false);
  for (int v = 0; v < row.candidates; ++v) row.scores[static_cast<std::size_t>(v)] = v == 0 ? 1.0 : v <= 500 ? 2e-9 : 1e-9;
  std::shuffle(row.scores.begin(), row.scores.begin() + row.candidates, rng);
  for (double threshold : {1.0 + 1.0505e-6, 1.0 + 1.2003e-6, 1.0 + 0.9011e-6}) {  // between blocks' prefixes
    SCOPED_TRACE("threshold 1 + " + std::to_string((threshold - 1.0) * 1e6) + "e-6");
    const Blocks want = select_t1(row.scores.data(), candidate_list(row), threshold, 1.0);
    ASSERT_GT(want.size(), 1u);  // the boundary lies among the tiny blocks
    ASSERT_LT(want.size(), 1001u);
    for (const Entry entry : {Entry::kScan, Entry::kNumeratorBins}) {
      EXPECT_EQ(warp_cut<32>(row, gpu::kT1, threshold, 0.0, entry), want);
      EXPECT_EQ(warp_cut<32>(row, gpu::kT5, threshold, 0.0, entry),
                select_t5(row.scores.data(), candidate_list(row), threshold, 1.0));
    }
  }
}

// T3 clean: the forced blocks are excluded from the ranking and their mass is the base (exact with dyadic rows).
TEST(WarpRules, CutWithForcedMassEqualsT3Clean) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int trial = 0; trial < 200; ++trial) {
    Row row = random_row(rng, 8 * gpu::kKeyChunk, trial % 2 ? Shape::kDyadic : Shape::kEqual, false);
    if (row.candidates == 0) continue;
    const Blocks forced = rng() % 2 ? Blocks{0, row.candidates - 1} : Blocks{row.candidates - 1};
    double forced_mass = 0;
    for (std::int32_t f : std::set<std::int32_t>(forced.begin(), forced.end())) {
      row.excluded[static_cast<std::size_t>(f)] = true;
      forced_mass += row.scores[static_cast<std::size_t>(f)];
    }
    double total = 0;
    for (int v = 0; v < row.candidates; ++v) total += row.scores[static_cast<std::size_t>(v)];
    const double tau = static_cast<double>(1 + rng() % 16) / 16.0;
    SCOPED_TRACE("trial " + std::to_string(trial));
    Blocks got = warp_cut<8>(row, gpu::kT1, tau * total, forced_mass);
    got.insert(got.end(), forced.begin(), forced.end());
    std::sort(got.begin(), got.end());
    got.erase(std::unique(got.begin(), got.end()), got.end());
    EXPECT_EQ(got, select_t3_clean(row.scores.data(), row.candidates, forced, tau));
  }
}

// The canonical mask row: ascending indices, zeros after the count, for rows of any length starting at any
// 4-byte offset from a 16-byte boundary (the zeros are written 16 bytes a lane between single entries).
TEST(WarpRules, MaskRowIsAscendingAndZeroPadded) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (const int nk : {200, 203, 37, 5, 1})
    for (int offset = 0; offset < 4; ++offset) {
      SCOPED_TRACE("nk " + std::to_string(nk) + ", offset " + std::to_string(offset));
      std::vector<bool> keep(static_cast<std::size_t>(nk));
      for (int v = 0; v < nk; ++v) keep[static_cast<std::size_t>(v)] = rng() % 3 == 0;
      alignas(16) std::int32_t buffer[256 + 8];
      std::fill(std::begin(buffer), std::end(buffer), -7);
      std::int32_t* indices = buffer + offset;
      std::int32_t count = -7;
      testing::emulated::run_warp([&] {
        unsigned long long kept = 0;
        for (int c = 0; c < 8; ++c) {
          const int v = c * gpu::kKeyChunk + static_cast<int>(threadIdx.x);
          if (v < nk && keep[static_cast<std::size_t>(v)]) kept |= 1ull << c;
        }
        gpu::write_mask_row<8>(kept, nk, indices, &count);
      });
      Blocks want;
      for (int v = 0; v < nk; ++v)
        if (keep[static_cast<std::size_t>(v)]) want.push_back(v);
      ASSERT_EQ(count, static_cast<std::int32_t>(want.size()));
      EXPECT_EQ(Blocks(indices, indices + count), want);
      EXPECT_TRUE(std::all_of(indices + count, indices + nk, [](std::int32_t i) { return i == 0; }));
      EXPECT_TRUE(std::all_of(indices + nk, std::end(buffer), [](std::int32_t i) { return i == -7; }))
          << "written past the row";
      EXPECT_TRUE(std::all_of(buffer, indices, [](std::int32_t i) { return i == -7; }))
          << "written before the row";
    }
}

// The best-ranked block outside a set: the highest score, the lowest index among equals.
TEST(WarpRules, BestOutsideTakesTheLowestIndexAmongEqualScores) {
  Row row;
  row.scores.assign(256, 0.5);
  row.excluded.assign(256, false);
  row.candidates = 100;
  row.scores[70] = row.scores[40] = row.scores[90] = 2.0;
  row.scores[150] = 9.0;  // past the candidates
  std::vector<unsigned long long> best(32, 0);
  testing::emulated::run_warp(
      [&] { best[threadIdx.x] = gpu::best_outside<8>(row.scores.data(), row.candidates, gpu::block_bit(40)); });
  EXPECT_EQ(blocks_of(best), (Blocks{70}));
}

}  // namespace
}  // namespace sparsefill
