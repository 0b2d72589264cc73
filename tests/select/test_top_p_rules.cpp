// The threshold rules on hand-computed rows, including the item that crosses the threshold under each rule.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "select/top_p_rules.hpp"
#include "support/random_tensors.hpp"

namespace sparsefill {
namespace {

using Blocks = std::vector<std::int32_t>;

// Scores 0.1, 0.4, 0.2, 0.3 (blocks 0..3): descending order 1 (0.4), 3 (0.3), 2 (0.2), 0 (0.1).
const double kRow[] = {0.1, 0.4, 0.2, 0.3};
const Blocks kAll = {0, 1, 2, 3};

TEST(TopPRules, T1KeepsTheCrossingItem) {
  EXPECT_EQ(select_t1(kRow, kAll, 0.5, 1.0), (Blocks{1, 3}));  // before: 0, 0.4 < 0.5; then 0.7 stops
  EXPECT_EQ(select_t1(kRow, kAll, 0.7, 1.0), (Blocks{1, 3}));  // mass before block 2 is 0.7, not < 0.7
  EXPECT_EQ(select_t1(kRow, kAll, 0.71, 1.0), (Blocks{1, 2, 3}));
  EXPECT_EQ(select_t1(kRow, kAll, 0.2, 2.0), (Blocks{1}));  // relative to the row total Z = 2
  EXPECT_EQ(select_t1(kRow, {0, 2}, 0.9, 1.0), (Blocks{0, 2}));
}

TEST(TopPRules, T2StopsAtTheFirstReachingPrefix) {
  EXPECT_EQ(select_t2(kRow, kAll, 0.7, 1.0), (Blocks{1, 3}));  // 0.4 + 0.3 reaches 0.7
  EXPECT_EQ(select_t2(kRow, kAll, 0.71, 1.0), (Blocks{1, 2, 3}));
  EXPECT_EQ(select_t2(kRow, {0, 2}, 0.5, 1.0), (Blocks{}));  // 0.3 never reaches 0.5: nothing
}

TEST(TopPRules, T5ExcludesTheCrossingItem) {
  EXPECT_EQ(select_t5(kRow, kAll, 0.7, 1.0), (Blocks{1, 3}));  // cumulative 0.4, 0.7 <= 0.7
  EXPECT_EQ(select_t5(kRow, kAll, 0.69, 1.0), (Blocks{1}));
  EXPECT_EQ(select_t5(kRow, kAll, 0.3, 1.0), (Blocks{}));
}

TEST(TopPRules, T4IsT5WithAtLeastOneItem) {
  EXPECT_EQ(select_t4(kRow, kAll, 0.7, 1.0), (Blocks{1, 3}));  // as T5
  EXPECT_EQ(select_t4(kRow, kAll, 0.3, 1.0), (Blocks{1}));     // T5 keeps nothing; T4 keeps the top item
  EXPECT_EQ(select_t4(kRow, {}, 0.3, 1.0), (Blocks{}));
}

TEST(TopPRules, TopKAndTiesByLowerIndex) {
  const double ties[] = {0.25, 0.25, 0.25, 0.25};
  EXPECT_EQ(select_top_k(ties, kAll, 2), (Blocks{0, 1}));
  EXPECT_EQ(select_t1(ties, kAll, 0.3, 1.0), (Blocks{0, 1}));
  EXPECT_EQ(select_top_k(kRow, kAll, 9), kAll);
}

TEST(TopPRules, T3ReferenceWithOneForcedBlockSkipsTheCandidateBefore) {
  // Row of 5 blocks, forced = {4} (the diagonal, current_index == 0), scores: 0.05 0.3 0.25 0.2 0.2 (Z = 1).
  const double row[] = {0.05, 0.3, 0.25, 0.2, 0.2};
  // Order: 4 (forced), then 1 (0.3), 2 (0.25), 3 (0.2), 0 (0.05). Compared sums: [0, 0, fm=0.2, 0.2+0.3=0.5,
  // 0.75]. tau 0.6: 4 kept, 1 (0 < .6), 2 (0.2 < .6), 3 (0.5 < .6), 0 (0.75 >= .6 -> rejected -> column 0 set
  // anyway).
  EXPECT_EQ(select_t3_reference(row, 5, {4}, 0.6), (Blocks{0, 1, 2, 3, 4}));
  // tau 0.45: 3 is compared with 0.5 -> rejected; 0 rejected; column 0 set by the rejection.
  EXPECT_EQ(select_t3_reference(row, 5, {4}, 0.45), (Blocks{0, 1, 2, 4}));
  // tau 0.15: block 2 is compared with fm = 0.2 -> rejected, so 1 and 4 plus column 0.
  EXPECT_EQ(select_t3_reference(row, 5, {4}, 0.15), (Blocks{0, 1, 4}));
  // The clean rule forces column 0 too and counts the true mass before: fm = 0.25; 1 (.25 < .45), 2 (.55):
  // stop.
  EXPECT_EQ(select_t3_clean(row, 5, {0, 4}, 0.45), (Blocks{0, 1, 4}));
}

TEST(TopPRules, T3ReferenceWithTwoForcedBlocksCountsTheTrueMass) {
  const double row[] = {0.1, 0.3, 0.25, 0.2, 0.15};
  // forced {0, 4}, fm = 0.25; order 4, 0 (forced by score), then 1, 2, 3; compared [0, 0, .25, .55, .8].
  EXPECT_EQ(select_t3_reference(row, 5, {0, 4}, 0.5), (Blocks{0, 1, 4}));  // 2 compared with .55 -> rejected
  EXPECT_EQ(select_t3_reference(row, 5, {0, 4}, 0.6), (Blocks{0, 1, 2, 4}));
  EXPECT_EQ(select_t3_clean(row, 5, {0, 4}, 0.6), (Blocks{0, 1, 2, 4}));
}

TEST(TopPRules, T3ReferenceOnAZeroRowKeepsOnlyForcedAndColumnZero) {
  const double zero[] = {0, 0, 0, 0};
  EXPECT_EQ(select_t3_reference(zero, 4, {2}, 0.9), (Blocks{0, 2}));
}

// The closed form of the reference T3 that the GPU stride selectors compute (cuda/select/stride_rules.cuh): with
// F forced blocks and the others ranked by score, the kept others are the T1 prefix C (mass before, forced mass
// included, below tau * total), plus the next 2 - F ranked blocks (the compared list [0, forced mass, o_1, ...]
// lags the ranking by that much); column 0 joins when that prefix does not cover every other block; a row of
// total 0 keeps the forced blocks and column 0.
Blocks t3_closed_form(const double* row, std::int64_t n, const Blocks& forced, double tau) {
  double total = 0, forced_mass = 0;
  for (std::int64_t v = 0; v < n; ++v) total += row[v];
  const std::set<std::int32_t> f(forced.begin(), forced.end());
  for (std::int32_t v : f) forced_mass += row[v];
  const double required = tau * total;
  std::set<std::int32_t> kept(f.begin(), f.end());
  if (!(required > 0)) {
    kept.insert(0);
    return Blocks(kept.begin(), kept.end());
  }
  Blocks others;
  for (std::int32_t v = 0; v < n; ++v)
    if (!f.count(v)) others.push_back(v);
  const Blocks prefix = select_t1(row, others, 1.0, required - forced_mass);
  const std::size_t lag = f.size() >= 2 ? 0 : 2 - f.size();
  const Blocks ranked = order_by_score(row, others);
  const std::size_t length = std::min(prefix.size() + lag, ranked.size());
  kept.insert(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(length));
  if (length < ranked.size()) kept.insert(0);
  return Blocks(kept.begin(), kept.end());
}

TEST(TopPRules, T3ReferenceEqualsTheClosedFormTheGpuComputes) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> score(0.0, 1.0);
  for (int trial = 0; trial < 2000; ++trial) {
    const std::int64_t n = 1 + static_cast<std::int64_t>(rng() % 40);
    const std::int64_t causal = 1 + static_cast<std::int64_t>(rng() % n);  // later blocks score 0 (not causal)
    std::vector<double> row(static_cast<std::size_t>(n), 0.0);
    for (std::int64_t v = 0; v < causal; ++v) row[v] = rng() % 5 == 0 ? 0.0 : score(rng);
    const std::int32_t diagonal = static_cast<std::int32_t>(causal - 1);
    const Blocks choices[] = {{}, {0}, {diagonal}, {0, diagonal}};
    const Blocks& forced = choices[rng() % 4];
    const double tau = 0.3 + 0.69 * score(rng);
    SCOPED_TRACE("trial " + std::to_string(trial));
    EXPECT_EQ(select_t3_reference(row.data(), n, forced, tau), t3_closed_form(row.data(), n, forced, tau));
  }
  const double zero[] = {0, 0, 0};
  EXPECT_EQ(t3_closed_form(zero, 3, {2}, 0.9), select_t3_reference(zero, 3, {2}, 0.9));
}

}  // namespace
}  // namespace sparsefill
