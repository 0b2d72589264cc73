// The pooled selectors' row kernel (cuda/select/score_rows.cuh: Prism's two bands, mean pooling's rules,
// PBS-Attn's segments), run on the host through the device emulator, against a plain host computation of the
// same rows from the same pooled inputs: logits in fp64 over each band's dims, softmax over the row's
// candidate blocks, the CPU's threshold rule (top_p_rules.hpp), the union of the bands, the forced blocks;
// the canonical mask rows (ascending, zeros after the count; rows past a varlen sequence's end empty). Pooled
// inputs are fresh random fp64 values. Prism's and mean pooling's mass rules take fp32-precision numerators
// and the kernel's reductions run in another order, so a decision may differ from the reference where a
// prefix mass lies within rounding of the threshold (it flips between the thresholds times (1 -
// kThresholdEps) and (1 + kThresholdEps)) or where two blocks' probabilities agree to that rounding and the
// cut falls between them; the test counts both. The top-k rule and PBS (fp64 numerators) must match exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "select/score_rows.cuh"
#include "select/top_p_rules.hpp"
#include "support/device_emulator.hpp"
#include "support/random_tensors.hpp"

namespace sparsefill {
namespace {

namespace gpu = cuda::select;
using Blocks = std::vector<std::int32_t>;

constexpr double kThresholdEps = 1e-4;

struct Case {
  std::string label;
  int batch = 1, heads_q = 4, heads_kv = 2, d = 16, block = 16;
  std::vector<int> lq, lk;  // tokens per sequence (varlen when they differ)
  bool causal = true;
  int bands = 2, rule = gpu::kT1, top_k = 0;
  double p[2] = {0.9, 0.8};
  bool force_sink = true, force_diagonal = true;
  int segment_blocks = 0;  // PBS
  bool pool_queries = false;  // the kernel pools the query blocks from the tokens (PBS)
};

// The host reference: kept blocks of row u of (b, h), the mass rules' thresholds times `factor` (at most 1);
// with `probs`, each band's probabilities of the row's blocks.
Blocks reference_row(const Case& c, const gpu::ScoringParams& p, const std::vector<double>& pq,
                     const std::vector<double>& pk, const std::vector<double>& scales,
                     const std::vector<std::int32_t>& order, int b, int h, int u, double factor,
                     std::vector<std::vector<double>>* probs = nullptr) {
  const int lq = c.lq[static_cast<std::size_t>(b)], lk = c.lk[static_cast<std::size_t>(b)];
  const int nq = (lq + c.block - 1) / c.block, nk = (lk + c.block - 1) / c.block, shift = nk - nq;
  const int hk = h / (c.heads_q / c.heads_kv);
  const int causal_end = c.causal ? std::min(std::max(u + shift + 1, 0), nk) : nk;
  Blocks own, candidates;
  if (c.segment_blocks > 0) {
    const int first = (u / c.segment_blocks) * c.segment_blocks;
    for (int v = first; v < std::min(first + c.segment_blocks, nk); ++v) own.push_back(v);
    if (lq <= c.segment_blocks * c.block) {  // the reference's dense fallback
      Blocks all;
      for (int v = 0; v < causal_end; ++v) all.push_back(v);
      return all;
    }
  }
  for (int v = 0; v < causal_end; ++v)
    if (std::find(own.begin(), own.end(), v) == own.end()) candidates.push_back(v);
  Blocks kept;
  for (int z = 0; z < c.bands && !candidates.empty(); ++z) {
    std::vector<double> prob(static_cast<std::size_t>(nk), 0.0);
    double top = -INFINITY, total = 0;
    for (int v : candidates) {
      double s = 0;
      for (int i = 0; i < p.band[z].count; ++i) {
        const int dim = p.band[z].dims[i];
        s += pq[((static_cast<std::size_t>(b) * c.heads_q + h) * p.nq + u) * c.d + dim] *
             pk[((static_cast<std::size_t>(b) * c.heads_kv + hk) * c.d + dim) * p.nk + v];
      }
      prob[v] = s * scales[(static_cast<std::size_t>(b) * c.heads_q + h) * c.bands + z];
      top = std::max(top, prob[v]);
    }
    for (int v : candidates) total += prob[v] = std::exp(prob[v] - top);
    for (int v : candidates) prob[v] /= total;
    const double t = std::min(1.0, c.p[z] * factor);
    const Blocks band = c.rule == gpu::kT1   ? select_t1(prob.data(), candidates, t, 1.0)
                        : c.rule == gpu::kT2 ? select_t2(prob.data(), candidates, t, 1.0)
                        : c.rule == gpu::kT4 ? select_t4(prob.data(), candidates, t, 1.0)
                        : c.rule == gpu::kT5 ? select_t5(prob.data(), candidates, t, 1.0)
                                             : select_top_k(prob.data(), candidates, c.top_k);
    kept = merge_blocks(kept, band);
    if (probs != nullptr) probs->push_back(prob);
  }
  if (c.segment_blocks > 0) {
    const std::int32_t* row_order = order.data() + (static_cast<std::size_t>(b) * c.heads_q + h) * p.width;
    const int sink = static_cast<int>(std::find(row_order, row_order + c.segment_blocks * c.block, 0) - row_order);
    kept = merge_blocks(merge_blocks(kept, own), {sink / c.block});
  }
  if (c.force_sink && nk > 0) kept = merge_blocks(kept, {0});
  if (c.force_diagonal && u + shift >= 0 && u + shift < nk) kept = merge_blocks(kept, {u + shift});
  return kept;
}

template <int kItems>
void check_case(const Case& c, std::mt19937_64& rng) {
  SCOPED_TRACE(c.label);
  const int max_lq = *std::max_element(c.lq.begin(), c.lq.end()), max_lk = *std::max_element(c.lk.begin(), c.lk.end());
  const bool varlen = c.batch > 1 && (std::adjacent_find(c.lq.begin(), c.lq.end(), std::not_equal_to<>()) != c.lq.end() ||
                                      std::adjacent_find(c.lk.begin(), c.lk.end(), std::not_equal_to<>()) != c.lk.end());
  gpu::ScoringParams p{};
  p.batch = c.batch;
  p.heads_q = c.heads_q;
  p.heads_kv = c.heads_kv;
  p.d = c.d;
  p.nq = (max_lq + c.block - 1) / c.block;
  p.nk = (max_lk + c.block - 1) / c.block;
  ASSERT_LE(p.nk, kItems * gpu::kKeyChunk);
  std::vector<std::int32_t> cu_q(1, 0), cu_k(1, 0);
  for (int b = 0; b < c.batch; ++b) {
    cu_q.push_back(cu_q.back() + c.lq[static_cast<std::size_t>(b)]);
    cu_k.push_back(cu_k.back() + c.lk[static_cast<std::size_t>(b)]);
  }
  p.lengths.block = c.block;
  p.lengths.lq = max_lq;
  p.lengths.lk = max_lk;
  if (varlen) {
    p.lengths.cu_q = cu_q.data();
    p.lengths.cu_k = cu_k.data();
  }
  std::normal_distribution<double> normal;
  std::vector<double> pq(static_cast<std::size_t>(c.batch) * c.heads_q * p.nq * c.d);
  std::vector<double> pk(static_cast<std::size_t>(c.batch) * c.heads_kv * c.d * p.nk);
  std::vector<double> scales(static_cast<std::size_t>(c.batch) * c.heads_q * c.bands);
  // Query tokens (packed [tokens, heads, d], few mantissa bits) and their block means (fp64, token order).
  std::vector<float> q_tokens(static_cast<std::size_t>(cu_q.back()) * c.heads_q * c.d);
  for (float& x : q_tokens) x = static_cast<float>(static_cast<int>(rng() % 257) - 128) / 64.0f;
  for (int b = 0; b < c.batch; ++b)
    for (int h = 0; h < c.heads_q; ++h)
      for (int u = 0; u < p.nq; ++u)
        for (int ch = 0; ch < c.d; ++ch) {
          double sum = 0;
          for (int t = u * c.block; t < std::min(c.lq[static_cast<std::size_t>(b)], (u + 1) * c.block); ++t)
            sum += q_tokens[((static_cast<std::size_t>(cu_q[static_cast<std::size_t>(b)]) + t) * c.heads_q + h) * c.d + ch];
          pq[((static_cast<std::size_t>(b) * c.heads_q + h) * p.nq + u) * c.d + ch] = sum / c.block;
        }
  for (double& x : pk) x = normal(rng);
  for (double& x : scales) x = std::uniform_real_distribution<double>(0.2, 1.5)(rng);
  p.pooled_q = c.pool_queries ? nullptr : pq.data();
  p.q = q_tokens.data();
  p.q_token = c.heads_q * c.d;
  p.q_head = c.d;
  p.q_batch = varlen ? 0 : static_cast<std::int64_t>(max_lq) * c.heads_q * c.d;
  p.pooled_k = pk.data();
  p.scales = scales.data();
  p.causal = c.causal;
  p.rule = c.rule;
  p.top_k = c.top_k;
  p.bands = c.bands;
  p.force_sink = c.force_sink;
  p.force_diagonal = c.force_diagonal;
  // Bands: the even dims in reverse order, the odd dims (Prism's bands are interleaved dim lists).
  std::vector<int> dims[2];
  for (int i = c.d - 2; i >= 0; i -= 2) dims[0].push_back(i);
  for (int i = 1; i < c.d; i += 2) dims[1].push_back(i);
  if (c.bands == 1) {
    dims[0].clear();
    for (int i = 0; i < c.d; ++i) dims[0].push_back(i);
  }
  for (int z = 0; z < 2; ++z) {
    const std::vector<int>& list = dims[z < c.bands ? z : 0];
    std::copy(list.begin(), list.end(), p.band[z].dims);
    p.band[z].count = static_cast<int>(list.size());
    p.band[z].p = c.p[z];
  }
  std::vector<std::int32_t> order;
  if (c.segment_blocks > 0) {
    p.segment_blocks = c.segment_blocks;
    p.width = max_lk;
    order.resize(static_cast<std::size_t>(c.batch) * c.heads_q * max_lk);
    for (int bh = 0; bh < c.batch * c.heads_q; ++bh) {  // a permutation inside each segment
      std::int32_t* row = order.data() + static_cast<std::size_t>(bh) * max_lk;
      const int segment = c.segment_blocks * c.block;
      for (int t = 0; t < max_lk; ++t) row[t] = t;
      for (int g = 0; g + segment <= max_lk; g += segment) std::shuffle(row + g, row + g + segment, rng);
    }
    p.key_order = order.data();
  }
  const std::size_t rows = static_cast<std::size_t>(c.batch) * c.heads_q * p.nq;
  std::vector<std::int32_t> counts(rows, -7), indices(rows * static_cast<std::size_t>(p.nk), -7);
  p.kv_num_blocks = counts.data();
  p.kv_indices = indices.data();
  constexpr int kRows = gpu::score_rows_per_cta(kItems);
  const gpu::ScoreRowsGrid grid = gpu::score_rows_grid(c.batch, c.heads_q, c.heads_kv, p.nq, kItems);
  testing::emulated::launch({grid.x, grid.y, grid.z}, kRows * 32, gpu::score_rows_smem_bytes(c.d, kItems),
                            [&] { gpu::score_rows_kernel<float, kItems>(p); });
  int equal = 0, at_threshold = 0, swapped = 0;
  for (int b = 0; b < c.batch; ++b)
    for (int h = 0; h < c.heads_q; ++h)
      for (int u = 0; u < p.nq; ++u) {
        const std::size_t row = (static_cast<std::size_t>(b) * c.heads_q + h) * p.nq + u;
        const int nq_b = (c.lq[static_cast<std::size_t>(b)] + c.block - 1) / c.block;
        auto reference = [&](double factor, std::vector<std::vector<double>>* probs = nullptr) {
          return u < nq_b ? reference_row(c, p, pq, pk, scales, order, b, h, u, factor, probs) : Blocks{};
        };
        const std::int32_t* got = indices.data() + row * static_cast<std::size_t>(p.nk);
        ASSERT_GE(counts[row], 0);
        ASSERT_LE(counts[row], p.nk);
        const Blocks kept(got, got + counts[row]);
        EXPECT_TRUE(std::is_sorted(kept.begin(), kept.end()));
        EXPECT_TRUE(std::all_of(got + counts[row], got + p.nk, [](std::int32_t i) { return i == 0; }));
        std::vector<std::vector<double>> probs;
        const Blocks want = reference(1.0, &probs);
        if (kept == want) {
          ++equal;
          continue;
        }
        const std::string where =
            "batch " + std::to_string(b) + " head " + std::to_string(h) + " row " + std::to_string(u);
        ASSERT_TRUE(c.rule != gpu::kTopK && c.segment_blocks == 0)
            << where << ": the fp64 numerators (top-k, PBS) differ from the reference";
        // Each differing block must flip between the thresholds times (1 -+ kThresholdEps), or be a swap at
        // the cut: another block of the row, kept by the kernel or the reference, has its probability in some
        // band up to that relative rounding.
        const Blocks lower = reference(1.0 - kThresholdEps), upper = reference(1.0 + kThresholdEps);
        Blocks differing, either;
        std::set_symmetric_difference(kept.begin(), kept.end(), want.begin(), want.end(),
                                      std::back_inserter(differing));
        std::set_union(kept.begin(), kept.end(), want.begin(), want.end(), std::back_inserter(either));
        auto holds = [](const Blocks& set, std::int32_t v) {
          return std::binary_search(set.begin(), set.end(), v);
        };
        for (const std::int32_t v : differing) {
          bool tie = false;
          for (const std::vector<double>& band : probs)
            for (const std::int32_t w : either) {
              const double x = band[static_cast<std::size_t>(v)], y = band[static_cast<std::size_t>(w)];
              tie =
                  tie || (w != v && std::max(x, y) > 0 && std::fabs(x - y) <= kThresholdEps * std::max(x, y));
            }
          if (holds(lower, v) != holds(upper, v)) {
            ++at_threshold;
          } else if (tie) {
            ++swapped;
          } else {
            ADD_FAILURE() << where << " block " << v << " (reference " << holds(want, v)
                          << "): neither within the thresholds times (1 +- " << kThresholdEps
                          << ") nor tied with a kept block up to that rounding";
          }
        }
      }
  std::printf(
      "  %s: %d rows equal the host reference; differing decisions: %d at a threshold, %d swaps at the cut\n",
      c.label.c_str(), equal, at_threshold, swapped);
}

TEST(EmulatedScoreRows, PrismBandsEqualTheHostReference) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  Case prism{"prism causal, 2 bands, t1"};
  prism.lq = prism.lk = {37 * 16 + 5};
  check_case<8>(prism, rng);
  Case wide = prism;
  wide.label = "prism non-causal, more keys than queries";
  wide.causal = false;
  wide.lq = {20 * 16};
  wide.lk = {45 * 16 + 1};
  check_case<8>(wide, rng);
  Case varlen = prism;
  varlen.label = "prism varlen 3 sequences, chunked prefill (more keys)";
  varlen.batch = 3;
  varlen.lq = {9 * 16, 1, 23 * 16 + 3};
  varlen.lk = {12 * 16, 40, 30 * 16};
  check_case<8>(varlen, rng);
  varlen.label = "prism varlen, 64 blocks per lane (8-row CTAs)";
  check_case<64>(varlen, rng);
  Case chunks = varlen;
  chunks.label =
      "prism varlen, 6 query heads, no GQA (two head chunks of the grid, the second half past heads_q)";
  chunks.heads_q = chunks.heads_kv = 6;
  check_case<8>(chunks, rng);
  Case padded = prism;
  padded.label = "prism causal, d 20 (bands of 10 dims, padded to the mma's k)";
  padded.d = 20;
  check_case<8>(padded, rng);
  Case many_tiles = prism;
  many_tiles.label =
      "prism non-causal, d 72, 800 key blocks (a warp's 6-7 key tiles taken 4 then 2-3 at a time)";
  many_tiles.causal = false;
  many_tiles.heads_q = many_tiles.heads_kv = 1;
  many_tiles.d = 72;
  many_tiles.lq = {16 * 16};
  many_tiles.lk = {800 * 16};
  check_case<32>(many_tiles, rng);
  Case long_rows = prism;
  long_rows.label = "prism causal, 300 key blocks (32 per lane)";
  long_rows.heads_q = long_rows.heads_kv = 1;
  long_rows.lq = long_rows.lk = {300 * 16};
  check_case<32>(long_rows, rng);
}

TEST(EmulatedScoreRows, MeanPoolingRulesEqualTheHostReference) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (const int rule : {gpu::kT1, gpu::kT4, gpu::kT5, gpu::kTopK}) {
    Case c{"meanpool rule " + std::to_string(rule)};
    c.bands = 1;
    c.rule = rule;
    c.top_k = 3;
    c.p[0] = 0.7;
    c.heads_q = 2;
    c.heads_kv = 1;
    c.force_sink = rule != gpu::kT5;
    c.force_diagonal = rule != gpu::kT4;
    c.lq = c.lk = {30 * 16};
    check_case<8>(c, rng);
  }
}

TEST(EmulatedScoreRows, PbsSegmentsEqualTheHostReference) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  Case c{"pbs segments of 4 blocks, t2, varlen with a dense-fallback sequence, queries pooled in the kernel"};
  c.pool_queries = true;
  c.bands = 1;
  c.rule = gpu::kT2;
  c.p[0] = 0.9;
  c.force_sink = c.force_diagonal = false;
  c.segment_blocks = 4;
  c.heads_kv = c.heads_q;  // PBS pools keys per query head
  c.batch = 2;
  c.lq = c.lk = {26 * 16 + 7, 3 * 16};
  check_case<8>(c, rng);
}

}  // namespace
}  // namespace sparsefill
