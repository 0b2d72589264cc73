// Selectors on hand-designed inputs whose block scores are known exactly: the exact mask, including the block
// that crosses each threshold.
#include <gtest/gtest.h>

#include <cmath>

#include "select/selector_test_inputs.hpp"
#include "sparsefill/error.hpp"
#include "sparsefill/selector.hpp"

namespace sparsefill {
namespace {

using Blocks = std::vector<std::int32_t>;
using testing::DesignedInputs;

Blocks row(const Selection& s, std::int64_t h, std::int64_t u) {
  const std::int32_t* r = s.mask.row_indices(0, h, u);
  return Blocks(r, r + s.mask.row_count(0, h, u));
}

SelectorInputs inputs_of(const DesignedInputs& in, std::int64_t block = 64,
                         RopeLayout layout = RopeLayout::kRotateHalf) {
  SelectorInputs s;
  s.q = in.q.view();
  s.k = in.k.view();
  s.v = in.v.view();
  s.block_size = block;
  s.rope_layout = layout;
  return s;
}

// Query block 3 (tokens 192..255) against key blocks 0..3 with probabilities 0.1, 0.4, 0.2, 0.3 after the
// pooled softmax: q = 4 e_0 (d = 16, so the logit is q.k / 4 = k_0), key block v = ln(m_v) e_0.
DesignedInputs meanpool_case() {
  DesignedInputs in(256, 1, 1, 16);
  in.fill_q(192, 256, 0, 0, 4.0f);
  const double m[] = {0.1, 0.4, 0.2, 0.3};
  for (int v = 0; v < 4; ++v) in.fill_k(v * 64, v * 64 + 64, 0, 0, static_cast<float>(std::log(m[v])));
  return in;
}

TEST(SelectorsHand, MeanPoolingRulesAndForcedBlocks) {
  const DesignedInputs in = meanpool_case();
  SelectorSettings s;
  s.meanpool.force_sink = s.meanpool.force_diagonal = false;
  s.meanpool.rule = "t2";
  s.meanpool.threshold = 0.65;  // 0.4, then 0.7 reaches it: blocks 1 and 3, the crossing block 3 included
  EXPECT_EQ(row(make_selector("meanpool", s)->select(inputs_of(in)), 0, 3), (Blocks{1, 3}));
  s.meanpool.threshold = 0.75;  // 0.4, 0.7, then 0.9: block 2 crosses
  EXPECT_EQ(row(make_selector("meanpool", s)->select(inputs_of(in)), 0, 3), (Blocks{1, 2, 3}));
  s.meanpool.rule = "t1";
  s.meanpool.threshold = 0.65;  // mass before block 2 is 0.7 >= 0.65: stops after block 3
  EXPECT_EQ(row(make_selector("meanpool", s)->select(inputs_of(in)), 0, 3), (Blocks{1, 3}));
  s.meanpool.rule = "topk";
  s.meanpool.top_k = 1;
  EXPECT_EQ(row(make_selector("meanpool", s)->select(inputs_of(in)), 0, 3), (Blocks{1}));
  s.meanpool.force_sink = s.meanpool.force_diagonal = true;
  const Selection forced = make_selector("meanpool", s)->select(inputs_of(in));
  EXPECT_EQ(row(forced, 0, 3), (Blocks{0, 1, 3}));
  EXPECT_EQ(row(forced, 0, 0), (Blocks{0}));
  // Query block 1 is zero: uniform over blocks 0 and 1; the top-1 tie goes to the lower index, plus the
  // diagonal.
  EXPECT_EQ(row(forced, 0, 1), (Blocks{0, 1}));
}

// Prism with disjoint bands (d = 16, 8 pairs; high = pairs 0..3, low = pairs 4..7) and calibration off: the
// high band prefers blocks 1 and 3 (0.1 0.4 0.2 0.3), the low band block 0 (0.7 0.1 0.1 0.1).
DesignedInputs prism_case(RopeLayout layout) {
  DesignedInputs in(256, 1, 1, 16);
  const std::int64_t high_dim =
      layout == RopeLayout::kRotateHalf ? 0 : 0;  // pair 0's first dim in both layouts
  const std::int64_t low_dim = layout == RopeLayout::kRotateHalf ? 4 : 8;  // pair 4's first dim
  const double scale = std::sqrt(8.0);  // each band's logit is q . k / sqrt(8)
  in.fill_q(192, 256, 0, high_dim, static_cast<float>(scale));
  in.fill_q(192, 256, 0, low_dim, static_cast<float>(scale));
  const double high[] = {0.1, 0.4, 0.2, 0.3}, low[] = {0.7, 0.1, 0.1, 0.1};
  for (int v = 0; v < 4; ++v) {
    in.fill_k(v * 64, v * 64 + 64, 0, high_dim, static_cast<float>(std::log(high[v])));
    in.fill_k(v * 64, v * 64 + 64, 0, low_dim, static_cast<float>(std::log(low[v])));
  }
  return in;
}

TEST(SelectorsHand, PrismBandsUnionInBothLayouts) {
  for (RopeLayout layout : {RopeLayout::kRotateHalf, RopeLayout::kInterleaved}) {
    const DesignedInputs in = prism_case(layout);
    SelectorSettings s;
    s.prism.d_high = 8;
    s.prism.d_low = 8;
    s.prism.calibrate = false;
    s.prism.force_sink = s.prism.force_recent = false;
    s.prism.p_high = s.prism.p_low = 0.65;  // high: 1 then 3 (crossing); low: 0 alone (0.7 >= 0.65)
    EXPECT_EQ(row(make_selector("prism", s)->select(inputs_of(in, 64, layout)), 0, 3), (Blocks{0, 1, 3}));
    s.prism.p_low = 0.75;   // low: 0 (0.7 < 0.75), then the tie 1/2/3 at 0.1 goes to block 1
    s.prism.p_high = 0.35;  // high: block 1 alone (0.4 crosses 0.35)
    EXPECT_EQ(row(make_selector("prism", s)->select(inputs_of(in, 64, layout)), 0, 3), (Blocks{0, 1}));
    s.prism.force_sink = s.prism.force_recent = true;
    EXPECT_EQ(row(make_selector("prism", s)->select(inputs_of(in, 64, layout)), 0, 3), (Blocks{0, 1, 3}));
  }
}

TEST(SelectorsHand, PrismCalibrationTemperature) {
  // By hand for prism_case: rms(Qh)/rms(Q) = 1 (both bands carry sqrt(8)), rms(Kh) = sqrt(sum ln(high)^2 /
  // 32) = 0.564, rms(K) = sqrt((sum ln(high)^2 + sum ln(low)^2) / 64) = 0.640, so tau_high = sqrt(8/16) *
  // 0.564 / 0.640 = 0.623 and the high band's probabilities become m^(1/0.623) normalised: 0.052 0.484 0.159
  // 0.305. At p_high = 0.45 the calibrated band stops after block 1 (0.484 >= 0.45) while the uncalibrated
  // one (0.4 < 0.45) also keeps block 3. The low band (p_low = 0.5) keeps block 0 either way.
  const DesignedInputs in = prism_case(RopeLayout::kRotateHalf);
  SelectorSettings s;
  s.prism.d_high = s.prism.d_low = 8;
  s.prism.force_sink = s.prism.force_recent = false;
  s.prism.p_high = 0.45;
  s.prism.p_low = 0.5;
  s.prism.calibrate = false;
  EXPECT_EQ(row(make_selector("prism", s)->select(inputs_of(in)), 0, 3), (Blocks{0, 1, 3}));
  s.prism.calibrate = true;
  EXPECT_EQ(row(make_selector("prism", s)->select(inputs_of(in)), 0, 3), (Blocks{0, 1}));
}

TEST(SelectorsHand, RoundRobinOffsetsPickTheSampledQuery) {
  // S = 8, block 64: 8 strides per block. Only query token 213 = 3*64 + 2*8 + 5 (in-stride offset 5) carries
  // a vector, aimed at key block 1. Head h samples offset h mod 8: only head 5 sees it (head 2 when
  // mirrored).
  DesignedInputs in(256, 8, 1, 16);
  for (std::int64_t h = 0; h < 8; ++h) in.q_at(213, h, 0) = 40.0f;
  in.fill_k(64, 128, 0, 0, 1.0f);
  SelectorSettings s;
  // Row 3 sums 8 stride rows. Zero queries spread uniformly: key block 1 gets 8 * (1/25 + ... + 1/32) = 2.45,
  // as do blocks 0 and 2. Head 5's sampled query 213 puts ~1 on block 1 instead of 8/27: 3.16. T1 at 0.25
  // (2.0 of 8) keeps the top block only: block 1 for head 5, the tie-winner block 0 for the others.
  s.rr.rule = "v2";
  s.rr.tau = 0.25;
  s.rr.keep_last_row = false;
  const Selection code = make_selector("rr", s)->select(inputs_of(in));
  for (std::int64_t h = 0; h < 8; ++h) {
    EXPECT_EQ(code.mask.contains(0, h, 3, 1), h == 5) << "head " << h;
    EXPECT_TRUE(code.mask.contains(0, h, 3, 0) && code.mask.contains(0, h, 3, 3))
        << "column 0 and diagonal, head " << h;
  }
  s.rr.offset = "mirrored";
  const Selection mirrored = make_selector("rr", s)->select(inputs_of(in));
  for (std::int64_t h = 0; h < 8; ++h) EXPECT_EQ(mirrored.mask.contains(0, h, 3, 1), h == 2) << "head " << h;
  s.rr.keep_last_row = true;
  EXPECT_EQ(make_selector("rr", s)->select(inputs_of(in)).mask.row_count(0, 0, 3),
            4);  // the last row is dense
  s.rr.stride = 48;
  EXPECT_THROW(make_selector("rr", s)->select(inputs_of(in)), Error);
}

TEST(SelectorsHand, RoundRobinRoundedKeySumsTieWhereExactSumsDoNot) {
  // S = 8, block 64, fp32 inputs. Every query of block 3 is (1, 0, ...). Keys of blocks 1 and 2 are (4, 0, ...),
  // and one key of block 2 is 4 + 2^-21, so block 2's stride sum 32 + 2^-21 beats block 1's 32 exactly but
  // rounds to 32 in fp32 (half an ulp there is 2^-19). Both blocks carry ~3.2 of row 3's mass 8 (logit 1
  // against 0), so T1 at 0.25 keeps one: the larger exactly, the lower index on a tie.
  DesignedInputs in(256, 1, 1, 16);
  in.fill_q(192, 256, 0, 0, 1.0f);
  in.fill_k(64, 192, 0, 0, 4.0f);
  in.k_at(130, 0, 0) = 4.0f + std::ldexp(1.0f, -21);
  SelectorSettings s;
  s.rr.rule = "v2";
  s.rr.tau = 0.25;
  s.rr.keep_last_row = false;
  EXPECT_EQ(row(make_selector("rr", s)->select(inputs_of(in)), 0, 3), (Blocks{0, 2, 3}));
  s.rr.key_sums = "rounded";
  EXPECT_EQ(row(make_selector("rr", s)->select(inputs_of(in)), 0, 3), (Blocks{0, 1, 3}));
  s.rr.key_sums = "fp8";
  EXPECT_THROW(make_selector("rr", s), Error);
}

TEST(SelectorsHand, PbsOrdersHeavyKeysFirstAndSelectsTheirBlock) {
  // L = 512, segment 256, block 64. Keys 200 (2a) and 10 (a) of segment 0 are heavy for the last queries.
  DesignedInputs in(512, 1, 1, 16);
  in.k_at(10, 0, 0) = 40.0f;
  in.k_at(200, 0, 0) = 80.0f;
  in.fill_q(448, 512, 0, 0, 1.0f);   // the proxy queries
  in.fill_q(320, 384, 0, 0, 10.0f);  // query block 5 (segment 1) looks for the heavy keys
  const Selection s = make_selector("pbs")->select(inputs_of(in));
  const std::int32_t* order = s.key_order.data();
  EXPECT_EQ(order[0], 200);
  EXPECT_EQ(order[1], 10);
  EXPECT_EQ(order[2], 0);  // equal importance keeps the original order
  EXPECT_EQ(order[11], 9);
  EXPECT_EQ(order[12], 11);
  for (int p = 256; p < 512; ++p) ASSERT_EQ(order[p], p) << "segment 1 has equal importance";
  // Permuted block 0 now holds both heavy keys (and original token 0): T2 keeps it alone; own segment forced.
  EXPECT_EQ(row(s, 0, 5), (Blocks{0, 4, 5, 6, 7}));
  EXPECT_EQ(row(s, 0, 1), (Blocks{0, 1, 2, 3}));  // segment 0: own segment only (no other candidates)
}

// The two public steps: the importance ranks each segment as the selector's order does, the selector's mask is
// the mask of its own order, another order inside the segments changes the pooled keys (and is accepted), and
// an order that moves a key across segments is refused.
TEST(SelectorsHand, PbsStepsComposeToTheSelector) {
  DesignedInputs in(512, 1, 1, 16);
  in.k_at(10, 0, 0) = 40.0f;
  in.k_at(200, 0, 0) = 80.0f;
  in.fill_q(448, 512, 0, 0, 1.0f);
  in.fill_q(320, 384, 0, 0, 10.0f);
  const PBSConfig config;
  const Selection s = make_selector("pbs")->select(inputs_of(in));
  const std::vector<double> importance = pbs_importance(inputs_of(in), config);
  ASSERT_EQ(importance.size(), 512u);
  EXPECT_GT(importance[200], importance[10]);
  EXPECT_GT(importance[10], importance[0]);
  for (int p = 1; p < 256; ++p) EXPECT_GE(importance[s.key_order[p - 1]], importance[s.key_order[p]]) << p;
  const Selection again = pbs_select_with_order(inputs_of(in), config, s.key_order);
  EXPECT_EQ(again.mask.kv_num_blocks(), s.mask.kv_num_blocks());
  EXPECT_EQ(again.mask.kv_indices(), s.mask.kv_indices());
  std::vector<std::int32_t> identity(512);
  for (int p = 0; p < 512; ++p) identity[p] = p;
  const Selection plain = pbs_select_with_order(inputs_of(in), config, identity);
  EXPECT_EQ(plain.key_order, identity);
  EXPECT_NE(row(plain, 0, 5), row(s, 0, 5)) << "the heavy keys are no longer pooled into one block";
  std::vector<std::int32_t> crossing = identity;
  std::swap(crossing[10], crossing[300]);
  try {
    pbs_select_with_order(inputs_of(in), config, crossing);
    ADD_FAILURE() << "an order across segments was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "key_order");
  }
  identity.pop_back();
  EXPECT_THROW(pbs_select_with_order(inputs_of(in), config, identity), Error);
}

}  // namespace
}  // namespace sparsefill

namespace sparsefill {
namespace {

TEST(SelectorsHand, XAttentionReferenceT3KeepsTheCandidateTheCleanRuleDrops) {
  // Block 64, S = 8, d = 16. Query block 3 = 4 e_0; key blocks 1 and 2 = 10.51 and 10.0 e_0, so every stride
  // row of block 3 puts 0.625 and 0.375 of its mass on blocks 1 and 2: row 3 sums to [~0, 5.0, 3.0, ~0] over
  // 8 stride rows. tau 0.5 (4.0): the reference forces the diagonal only (one chunk), compares block 2 with
  // the forced mass (~0) and keeps it; the clean rule forces column 0 and the diagonal and stops before block
  // 2 (5.0 >= 4.0).
  DesignedInputs in(256, 1, 1, 16);
  in.fill_q(192, 256, 0, 0, 4.0f);
  in.fill_k(64, 128, 0, 0, 10.51f);
  in.fill_k(128, 192, 0, 0, 10.0f);
  SelectorSettings s;
  s.xattn.tau = 0.5;
  EXPECT_EQ(row(make_selector("xattn", s)->select(inputs_of(in)), 0, 3), (Blocks{0, 1, 2, 3}));
  s.xattn.t3 = "clean";
  EXPECT_EQ(row(make_selector("xattn", s)->select(inputs_of(in)), 0, 3), (Blocks{0, 1, 3}));
  s.xattn.keep_sink = true;  // the reference's quirk: row 0 becomes all blocks, above the diagonal too
  EXPECT_EQ(row(make_selector("xattn", s)->select(inputs_of(in)), 0, 0), (Blocks{0, 1, 2, 3}));
}

TEST(SelectorsHand, MInferenceRasterisesColumnsAndDiagonals) {
  // L = 512, block 64. The last 64 queries attend key 300. With 31 columns (30 forced + key 300) and 100
  // diagonals (exactly the forced most recent ones), row u keeps block 0 (columns 0..29), blocks u-2..u
  // (offsets 0..99 reach back 99 tokens from the row's first query) and block 4 (key 300) once the row's last
  // query reaches key 300.
  DesignedInputs in(512, 1, 1, 16);
  in.k_at(300, 0, 0) = 50.0f;
  in.fill_q(448, 512, 0, 0, 1.0f);
  SelectorSettings s;
  s.minference.vertical_size = 31;
  s.minference.slash_size = 100;
  const Selection sel = make_selector("minference", s)->select(inputs_of(in));
  EXPECT_EQ(row(sel, 0, 7), (Blocks{0, 4, 5, 6, 7}));
  EXPECT_EQ(row(sel, 0, 5), (Blocks{0, 3, 4, 5}));
  EXPECT_EQ(row(sel, 0, 4), (Blocks{0, 2, 3, 4}));
  EXPECT_EQ(row(sel, 0, 3), (Blocks{0, 1, 2, 3}));
  EXPECT_EQ(row(sel, 0, 1), (Blocks{0, 1}));
}

TEST(SelectorsHand, FlexPrefillVerticalSlashHead) {
  // L = 512, block 64, min budget 128 tokens = 2 blocks. The last block attends key 300 (99.8% of its mass),
  // so the head is vertical-slash (the pooled estimate is flat: sqrt-JS far above 0.1). Budgets: the coverage
  // counts give 1 // 128 + 1 = 1 block, raised to the minimum 2. Verticals: block 0 (forced) and block 4 (key
  // 300). Slashes: the main diagonal (forced) and the block diagonal holding distances 148..211 mostly (44 of
  // 64 rows fall in slash block 5, i.e. block offset 7 - 5 = 2).
  DesignedInputs in(512, 1, 1, 16);
  in.k_at(300, 0, 0) = 50.0f;
  in.fill_q(448, 512, 0, 0, 1.0f);
  SelectorSettings s;
  s.flexprefill.min_budget = 128;
  const Selection sel = make_selector("flexprefill", s)->select(inputs_of(in));
  EXPECT_EQ(row(sel, 0, 7), (Blocks{0, 4, 5, 7}));
  EXPECT_EQ(row(sel, 0, 5), (Blocks{0, 3, 4, 5}));
  EXPECT_EQ(row(sel, 0, 3), (Blocks{0, 1, 3}));
  EXPECT_EQ(row(sel, 0, 1), (Blocks{0, 1}));
  EXPECT_EQ(row(sel, 0, 0), (Blocks{0}));
  s.flexprefill.min_budget = 512;  // L <= max(2 * 64, 512): the reference runs dense attention
  EXPECT_EQ(make_selector("flexprefill", s)->select(inputs_of(in)).mask.row_count(0, 0, 7), 8);
}

TEST(SelectorsHand, OracleKeepsTheTrueTopP) {
  // meanpool_case's true attention of query block 3: row r has weights 0.1, 0.4, 0.2 on all 64 keys of blocks
  // 0-2 and 0.3 on its r + 1 visible keys of block 3; averaged over the rows the block masses are 0.1186,
  // 0.4742, 0.2371, 0.1701. T1 at 0.45: block 1 alone crosses; at 0.6: blocks 1 and 2 (0.711 crosses); at
  // 0.8: blocks 1, 2, 3.
  const DesignedInputs in = meanpool_case();
  SelectorSettings s;
  for (const auto& [p, want] :
       std::vector<std::pair<double, Blocks>>{{0.45, {1}}, {0.6, {1, 2}}, {0.8, {1, 2, 3}}}) {
    s.oracle.p = p;
    EXPECT_EQ(row(make_selector("oracle", s)->select(inputs_of(in)), 0, 3), want) << "p " << p;
  }
}

}  // namespace
}  // namespace sparsefill
