// The last-rows attention kernels (cuda/select/last_rows.cuh: the statistics pass of MInference and
// FlexPrefill; pbs_kernels.cuh: PBS's segmented ranking; line_sums.cuh: the vertical and slash sums of
// MInference and FlexPrefill), run on the host through the device emulator on fp32 inputs of few mantissa
// bits (every product exact in fp64), against a plain fp64 computation: the merged softmax statistics of each
// last row (with and without the causal bound), PBS's key order from given importances (descending inside
// complete segments, ties by the lower index), every line sum (forced lines +inf, zeros past the keys) and
// MInference's top-k of the line sums. The logits here are exact (inputs of few mantissa bits, d = 16), so
// the row maxima and PBS's offsets agree to fp64 rounding (the kernel sums in another order); the exp-sums
// and line sums agree to kFp32Exp, relative, as their numerators are fp32-precision exponentials; the key
// order and the kept lines must be equal.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "select/emulated_last_rows.hpp"
#include "support/device_emulator.hpp"
#include "support/random_tensors.hpp"

#include "select/line_sums.cuh"
#include "select/line_top_k.cuh"
#include "select/pbs_kernels.cuh"

namespace sparsefill {
namespace {

namespace gpu = cuda::select;

struct LastRowsCase {
  int heads_q = 4, heads_kv = 2, d = 16, lq = 1100, lk = 1100, rows = 40;
  bool causal = false;
  int segment = 0;  // PBS
};

struct Problem {
  std::vector<float> q, k;  // [tokens, heads, d]
  gpu::LastRowsParams p{};
  std::vector<double> partial, importance;
  std::vector<std::int32_t> order;
};

Problem make_problem(const LastRowsCase& c, std::mt19937_64& rng) {
  Problem pr;
  auto fill = [&](std::vector<float>& x, std::size_t n) {
    x.resize(n);
    for (float& v : x) v = static_cast<float>(static_cast<int>(rng() % 129) - 64) / 32.0f;  // exact in bf16
  };
  fill(pr.q, static_cast<std::size_t>(c.lq) * c.heads_q * c.d);
  fill(pr.k, static_cast<std::size_t>(c.lk) * c.heads_kv * c.d);
  pr.p = testing::one_sequence_rows(pr.q.data(), pr.k.data(), c.lq, c.lk, c.heads_q, c.heads_kv, c.d, 16);
  gpu::LastRowsParams& p = pr.p;
  p.rows = c.rows;
  p.scale = 1.0 / std::sqrt(static_cast<double>(c.d));
  p.causal = c.causal;
  p.segment = c.segment;
  pr.partial.assign(static_cast<std::size_t>(c.heads_q) * p.chunks * c.rows * 2, -7.0);
  pr.importance.assign(static_cast<std::size_t>(c.heads_q) * c.lk, -7.0);
  pr.order.assign(static_cast<std::size_t>(c.heads_q) * c.lk, -7);
  p.partial = pr.partial.data();
  p.importance = pr.importance.data();
  p.key_order = pr.order.data();
  return pr;
}

void run_statistics(Problem& pr) {
  const gpu::LastRowsParams& p = pr.p;
  testing::emulated::launch({static_cast<unsigned>(p.chunks), static_cast<unsigned>(p.heads_q), 1},
                            gpu::last_rows_threads(p.rows), gpu::last_rows_smem_bytes<float>(p.rows, p.d),
                            [&] { gpu::last_rows_stats_kernel<float>(p); });
}

// Host fp64 logits of last row r (query lq - rows + r) of head h against key j.
double logit(const LastRowsCase& c, const Problem& pr, int h, int r, int j) {
  const int hk = h / (c.heads_q / c.heads_kv), t = c.lq - c.rows + r;
  double s = 0;
  for (int i = 0; i < c.d; ++i)
    s += static_cast<double>(pr.q[(static_cast<std::size_t>(t) * c.heads_q + h) * c.d + i]) *
         static_cast<double>(pr.k[(static_cast<std::size_t>(j) * c.heads_kv + hk) * c.d + i]);
  return s * pr.p.scale;
}

int attended(const LastRowsCase& c) { return c.segment == 0 ? c.lk : c.lk > c.segment ? (c.lk / c.segment) * c.segment : 0; }

// The keys row r sees: all attended keys, or (causal) those at or before its position, bottom-right aligned.
int seen_end(const LastRowsCase& c, int r) {
  const int keys = attended(c);
  return c.causal ? std::min(keys, c.lq - c.rows + r + c.lk - c.lq + 1) : keys;
}

void expect_close(double got, double want, const std::string& what) {
  EXPECT_NEAR(got, want, 1e-12 * std::max(1.0, std::abs(want))) << what;
}

// The statistics pass and the line sums take each numerator as exp_nonpositive_fp32, whose relative error is
// below (2 |x| + 4) 2^-23 (|x| the distance below the row maximum): 1e-5 covers |x| up to 40, and numerators
// further below the maximum weigh less than e^-40 of it in an exp-sum. Fp32 flushes below 2^-126 to zero:
// hence the tiny absolute part, for line sums of such numerators only.
constexpr double kFp32Exp = 1e-5;
void expect_close_fp32_exp(double got, double want, const std::string& what) {
  EXPECT_NEAR(got, want, kFp32Exp * std::abs(want) + 1e-30) << what;
}

TEST(EmulatedLastRows, SoftmaxStatisticsEqualTheHostComputation) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (const bool causal : {false, true}) {
    LastRowsCase c;
    c.causal = causal;
    c.lq = causal ? 700 : c.lq;  // causal: more keys than queries (chunked prefill)
    Problem pr = make_problem(c, rng);
    run_statistics(pr);
    for (int h = 0; h < c.heads_q; ++h)
      for (int r = 0; r < c.rows; ++r) {
        double m = -INFINITY, z = 0;
        for (int j = 0; j < seen_end(c, r); ++j) m = std::max(m, logit(c, pr, h, r, j));
        for (int j = 0; j < seen_end(c, r); ++j) z += std::exp(logit(c, pr, h, r, j) - m);
        double got_m, got_z;
        gpu::merged_row_stats(pr.p, 0, h, r, attended(c), false, got_m, got_z);
        const std::string what = std::string(causal ? "causal" : "full") + " head " + std::to_string(h) + " row " + std::to_string(r);
        expect_close(got_m, m, what + " max");
        expect_close_fp32_exp(got_z, z, what + " exp-sum");
      }
  }
}

// The merge between PBS's proxy passes (pbs_kernels.cuh): each row's base-2 chunk statistics, some chunks empty,
// become o_r = log2(rows * sum over chunks of z_c 2^m_c) in the row's slot (chunk 0's maximum); nothing else
// changes, and a sequence of one segment (no proxy) is left alone.
TEST(EmulatedLastRows, PbsRowOffsetsMergeTheChunkStatistics) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> maximum(-20.0, 20.0), sum(1.0, 500.0);
  LastRowsCase c;
  c.rows = 40;
  c.segment = 256;
  c.lq = c.lk = 3100;  // 12 complete segments: 3 chunks of keys, a 4th in the layout
  Problem pr = make_problem(c, rng);
  gpu::LastRowsParams& p = pr.p;
  for (std::size_t i = 0; i < pr.partial.size(); i += 2) {
    const bool empty = (i / 2 / c.rows) % p.chunks > 0 && rng() % 5 == 0;  // chunk 0 holds keys of every row
    pr.partial[i] = empty ? -INFINITY : maximum(rng);
    pr.partial[i + 1] = empty ? 0.0 : sum(rng);
  }
  const std::vector<double> before = pr.partial;
  testing::emulated::launch({1, static_cast<unsigned>(c.heads_q), 1}, gpu::last_rows_threads(c.rows), 0,
                            [&] { gpu::pbs_row_offsets_kernel(p); });
  for (int h = 0; h < c.heads_q; ++h)
    for (int r = 0; r < c.rows; ++r) {
      const std::int64_t slot = gpu::importance_row_slot(p, h, r);
      double total = 0.0;
      for (int chunk = 0; chunk < p.chunks; ++chunk) {
        const std::size_t at = static_cast<std::size_t>(slot) + static_cast<std::size_t>(chunk) * c.rows * 2;
        if (chunk * gpu::kProxyChunk < attended(c)) total += before[at + 1] * std::exp2(before[at]);
        EXPECT_EQ(pr.partial[at + 1], before[at + 1]) << "head " << h << " row " << r;
        if (chunk > 0) EXPECT_EQ(pr.partial[at], before[at]) << "head " << h << " row " << r << " chunk " << chunk;
      }
      expect_close(pr.partial[static_cast<std::size_t>(slot)], std::log2(total * c.rows),
                   "head " + std::to_string(h) + " row " + std::to_string(r));
    }
  p.lengths.lq = p.lengths.lk = c.segment;  // one segment: no proxy, nothing written
  const std::vector<double> merged = pr.partial;
  testing::emulated::launch({1, static_cast<unsigned>(c.heads_q), 1}, gpu::last_rows_threads(c.rows), 0,
                            [&] { gpu::pbs_row_offsets_kernel(p); });
  EXPECT_EQ(pr.partial, merged);
}

// PBS's segmented ranking (pbs_kernels.cuh) of given importances: descending inside each complete segment,
// ties by the lower index (the CPU's stable sort), the identity elsewhere. Importances are drawn from few
// values, so ties are common. (The importance itself comes from tensor cores: the GPU test compares it.)
TEST(EmulatedLastRows, PbsKeyOrderRanksEachCompleteSegment) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  LastRowsCase c;
  c.rows = 16;
  c.segment = 256;
  c.lq = c.lk = 1100;  // 4 complete segments, a partial one
  Problem pr = make_problem(c, rng);
  for (double& x : pr.importance) x = static_cast<double>(rng() % 50) / 64.0;
  const gpu::LastRowsParams& p = pr.p;
  testing::emulated::launch({static_cast<unsigned>((c.lk + c.segment - 1) / c.segment), static_cast<unsigned>(c.heads_q), 1},
                            c.segment, 0, [&] { gpu::segment_rank_kernel(p); });
  const int keys = attended(c);
  for (int h = 0; h < c.heads_q; ++h) {
    const double* importance = pr.importance.data() + static_cast<std::size_t>(h) * c.lk;
    std::vector<std::int32_t> want(static_cast<std::size_t>(c.lk));
    std::iota(want.begin(), want.end(), 0);
    for (int g = 0; g + c.segment <= keys; g += c.segment)
      std::stable_sort(want.begin() + g, want.begin() + g + c.segment,
                       [&](std::int32_t a, std::int32_t b) { return importance[a] > importance[b]; });
    const std::int32_t* got = pr.order.data() + static_cast<std::size_t>(h) * c.lk;
    EXPECT_EQ(std::vector<std::int32_t>(got, got + c.lk), want) << "head " << h;
  }
}

// Line sums through line_sums_kernel<float, kRows> with `rows` last rows: MInference's form (forced lines, plain
// sums) or FlexPrefill's (no forced lines, each probability divided by the rows).
template <int kRows>
void expect_line_sums(std::mt19937_64& rng, int rows, bool flexprefill, int d = 16) {
  LastRowsCase c;
  c.causal = true;
  c.rows = rows;
  c.d = d;
  c.lq = 300;
  c.lk = 420;  // chunked prefill: keys before the queries
  Problem pr = make_problem(c, rng);
  pr.p.width = c.lk + 5;  // a wider layout than this sequence: entries past its keys are zeroed
  run_statistics(pr);
  testing::emulated::launch({1, static_cast<unsigned>(c.heads_q), 1}, gpu::last_rows_threads(c.rows), 0,
                            [&] { gpu::merge_row_stats_kernel(pr.p); });
  std::vector<double> vertical(static_cast<std::size_t>(c.heads_q) * pr.p.width, -7.0), slash = vertical;
  gpu::LineParams lp{};
  lp.rows = pr.p;
  lp.vertical = vertical.data();
  lp.slash = slash.data();
  lp.forced_columns = flexprefill ? 0 : 30;  // MInference's forced lines
  lp.forced_diagonals = flexprefill ? 0 : 100;
  lp.term_divisor = flexprefill ? rows : 1.0;
  constexpr int kLines = gpu::kLinesPerCta;
  const unsigned ctas = static_cast<unsigned>((pr.p.width + kLines - 1) / kLines);
  for (int is_slash = 0; is_slash < 2; ++is_slash)
    testing::emulated::launch({ctas, static_cast<unsigned>(c.heads_q), 1}, gpu::kLineThreads,
                              gpu::line_smem_bytes<float, kRows>(c.d),
                              [&] { gpu::line_sums_kernel<float, kRows>(lp, is_slash); });
  const int shift = c.lk - c.lq;
  for (int h = 0; h < c.heads_q; ++h) {
    std::vector<std::vector<double>> p(static_cast<std::size_t>(c.rows), std::vector<double>(static_cast<std::size_t>(c.lk), 0.0));
    for (int r = 0; r < c.rows; ++r) {
      double m = -INFINITY, z = 0;
      for (int j = 0; j < seen_end(c, r); ++j) m = std::max(m, logit(c, pr, h, r, j));
      for (int j = 0; j < seen_end(c, r); ++j) z += std::exp(logit(c, pr, h, r, j) - m);
      for (int j = 0; j < seen_end(c, r); ++j) p[r][j] = std::exp(logit(c, pr, h, r, j) - m) / z / lp.term_divisor;
    }
    for (int x = 0; x < pr.p.width; ++x) {
      double v = 0, s = 0;
      for (int r = 0; r < c.rows && x < c.lk; ++r) {
        v += p[r][x];
        const int j = c.lq - c.rows + r + shift - x;
        if (j >= 0) s += p[r][j];
      }
      const double want_v = x >= c.lk ? 0.0 : x < lp.forced_columns ? INFINITY : v;
      const double want_s = x >= c.lk ? 0.0 : x < lp.forced_diagonals ? INFINITY : s;
      const std::size_t at = static_cast<std::size_t>(h) * pr.p.width + x;
      if (std::isinf(want_v))
        EXPECT_EQ(vertical[at], want_v) << "column " << x;
      else
        expect_close_fp32_exp(vertical[at], want_v, "column " + std::to_string(x));
      if (std::isinf(want_s))
        EXPECT_EQ(slash[at], want_s) << "offset " << x;
      else
        expect_close_fp32_exp(slash[at], want_s, "offset " + std::to_string(x));
    }
  }
}

TEST(EmulatedLastRows, MInferenceLineSumsEqualTheHostComputation) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  expect_line_sums<64>(rng, 40, false);   // last_q 40
  expect_line_sums<128>(rng, 100, false);  // last_q 100: the four-row-group layout
  expect_line_sums<64>(rng, 40, false, 20);  // d 20: the mma's last 16-dim step is partly past d
}

TEST(EmulatedLastRows, FlexPrefillLineSumsEqualTheHostComputation) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  expect_line_sums<128>(rng, 128, true);  // the last block of 128 rows, averaged
  expect_line_sums<64>(rng, 64, true);
}

// MInference's top-k (line_top_k.cuh) of line arrays of `lk` entries, against a stable sort by value (ties by
// the lower index): vertical keeps each block's lowest kept column, slash the kept offsets ascending.
// `shape`: 0 distinct random values, 1 a few repeated values (ties inside the kept set and at its boundary),
// 2 mostly zeros (the boundary among hundreds of equal entries); the forced lines are +inf.
void expect_top_k(std::mt19937_64& rng, int lk, int shape, int vertical_size, int slash_size) {
  constexpr int kBlock = 16;
  const int width = lk + 3, nk = (lk + kBlock - 1) / kBlock;
  std::vector<double> lines[2];
  for (auto& v : lines) {
    v.assign(static_cast<std::size_t>(width), -5.0);  // entries past lk are never read
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    for (int x = 0; x < lk; ++x) {
      const double u = unit(rng);
      v[x] = shape == 0 ? u : shape == 1 ? std::floor(u * 7) / 8 : (u < 0.1 ? u : 0.0);
    }
  }
  for (int x = 0; x < std::min(lk, 30); ++x) lines[0][x] = INFINITY;
  for (int x = 0; x < std::min(lk, 100); ++x) lines[1][x] = INFINITY;
  gpu::LineParams lp{};
  lp.rows.heads_q = 1;
  lp.rows.width = width;
  lp.rows.lengths.lq = lp.rows.lengths.lk = lk;
  lp.rows.lengths.block = kBlock;
  lp.vertical = lines[0].data();
  lp.slash = lines[1].data();
  lp.vertical_size = vertical_size;
  lp.slash_size = slash_size;
  lp.nk = nk;
  std::vector<std::int32_t> column_min(static_cast<std::size_t>(nk), -3),
      offsets(static_cast<std::size_t>(width), -3);
  std::int32_t count = -3;
  lp.column_min = column_min.data();
  lp.offsets = offsets.data();
  lp.offset_count = &count;
  for (int slash = 0; slash < 2; ++slash)
    testing::emulated::launch({1, 1, 1}, gpu::kTopKThreads, 0, [&] { gpu::line_top_k_kernel(lp, slash); });
  for (int slash = 0; slash < 2; ++slash) {
    const std::vector<double>& v = lines[slash];
    std::vector<std::int32_t> order(static_cast<std::size_t>(lk));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) { return v[a] > v[b]; });
    const int k = std::min(std::max(slash ? slash_size : vertical_size, slash ? 50 : 30), lk);
    std::vector<std::int32_t> kept(order.begin(), order.begin() + k);
    std::sort(kept.begin(), kept.end());
    const std::string label = std::string(slash ? "slash" : "vertical") + ", lk " + std::to_string(lk) +
                              ", shape " + std::to_string(shape) + ", k " + std::to_string(k);
    if (slash) {
      ASSERT_EQ(count, k) << label;
      EXPECT_EQ(std::vector<std::int32_t>(offsets.begin(), offsets.begin() + k), kept) << label;
    } else {
      std::vector<std::int32_t> want(static_cast<std::size_t>(nk), INT32_MAX);
      for (std::int32_t x : kept) want[x / kBlock] = std::min(want[x / kBlock], x);
      EXPECT_EQ(column_min, want) << label;
    }
  }
}

TEST(EmulatedLastRows, MInferenceTopKEqualsAStableSort) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int shape = 0; shape < 3; ++shape) {
    expect_top_k(rng, 2500, shape, 700, 1300);  // three chunks of the CTA's threads
    expect_top_k(rng, 700, shape, 10, 20);      // below the floors of 30 and 50
  }
  expect_top_k(rng, 9000, 0, 3000, 100);  // past the 8 loads a thread of one histogram step
  expect_top_k(rng, 40, 1, 1000, 1000);  // every line kept
  expect_top_k(rng, 1, 0, 1000, 1000);
}

}  // namespace
}  // namespace sparsefill
