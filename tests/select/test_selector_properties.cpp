// Properties every selector must have on scenes with fresh seeds: a valid per-query-head mask, its forced
// blocks, nothing above the causal diagonal except where the method says so, determinism, native GQA equal to
// replicated K/V, bottom-right alignment with seqlen_k > seqlen_q, and Prism's independence of the RoPE
// layout.
#include <gtest/gtest.h>

#include <cmath>

#include "sparsefill/error.hpp"
#include "sparsefill/scene.hpp"
#include "sparsefill/selector.hpp"
#include "support/error_argument.hpp"
#include "support/random_tensors.hpp"

namespace sparsefill {
namespace {

Scene small_scene(std::uint64_t seed, std::int64_t len = 700, const std::string& preset = "llama31-like",
                  RopeLayout layout = RopeLayout::kRotateHalf) {
  SceneConfig c;
  c.preset = preset;
  c.seqlen = len;
  c.heads_q = 8;
  c.heads_kv = 2;
  c.head_dim = 64;
  c.seed = seed;
  c.rope_layout = layout;
  return generate_scene(c);
}

SelectorInputs inputs_of(const TensorView& q, const TensorView& k, const TensorView& v, std::int64_t block) {
  SelectorInputs in;
  in.q = q;
  in.k = k;
  in.v = v;
  in.block_size = block;
  return in;
}

// Settings that make the short test scenes exercise the sparse paths (PBS segments, FlexPrefill budgets).
SelectorSettings test_settings() {
  SelectorSettings s;
  s.pbs.segment = 256;
  s.flexprefill.min_budget = 128;
  return s;
}

const std::vector<std::string> kSparseMethods = {"prism",       "rr",         "pbs",      "xattn",
                                                 "flexprefill", "minference", "meanpool", "oracle"};

TEST(SelectorProperties, ValidMasksForcedBlocksAndCausality) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const Scene scene = small_scene(seed);
  const AttentionProblem p = describe_attention(scene.q.view(), scene.k.view(), scene.v.view());
  for (std::int64_t block : {64, 128}) {
    for (const std::string& method : kSparseMethods) {
      SCOPED_TRACE(method + " block " + std::to_string(block));
      const Selection s = make_selector(method, test_settings())
                              ->select(inputs_of(scene.q.view(), scene.k.view(), scene.v.view(), block));
      ASSERT_NO_THROW(s.mask.validate_for(p));
      ASSERT_EQ(s.mask.heads(), p.heads_q);
      const MaskDensity d = mask_density(s.mask, p, true);
      EXPECT_GT(d.overall, 0.0);
      EXPECT_LE(d.overall, 1.0);
      const std::int64_t nq = s.mask.num_q_blocks(), per_segment = 256 / block;
      for (std::int64_t h = 0; h < p.heads_q; ++h) {
        for (std::int64_t u = 0; u < nq; ++u) {
          for (std::int32_t n = 0; n < s.mask.row_count(0, h, u); ++n) {
            const std::int32_t v = s.mask.row_indices(0, h, u)[n];
            const bool own_segment = method == "pbs" && v / per_segment == u / per_segment;
            EXPECT_TRUE(v <= u || own_segment)
                << "block (" << u << ", " << v << ") above the diagonal, head " << h;
          }
          const bool sink = s.mask.contains(0, h, u, 0), diagonal = s.mask.contains(0, h, u, u);
          if (method == "prism" || method == "meanpool" || method == "rr" || method == "minference") {
            EXPECT_TRUE(sink && diagonal) << "row " << u << " head " << h;
          }
          if (method == "xattn" || method == "flexprefill")
            EXPECT_TRUE(diagonal) << "row " << u << " head " << h;
          if (method == "rr" && u == nq - 1)
            EXPECT_EQ(s.mask.row_count(0, h, u), nq) << "RR's last row is dense";
          if (method == "pbs") {
            const std::int32_t* order = s.key_order.data() + h * 700;
            const std::int64_t sink_block = (std::find(order, order + 700, 0) - order) / block;
            EXPECT_TRUE(s.mask.contains(0, h, u, sink_block));
            for (std::int64_t v = (u / per_segment) * per_segment;
                 v < std::min(nq, (u / per_segment + 1) * per_segment); ++v) {
              EXPECT_TRUE(s.mask.contains(0, h, u, v)) << "own segment block " << v << " of row " << u;
            }
          }
        }
      }
      const Selection again = make_selector(method, test_settings())
                                  ->select(inputs_of(scene.q.view(), scene.k.view(), scene.v.view(), block));
      EXPECT_EQ(again.mask.kv_indices(), s.mask.kv_indices()) << "not deterministic";
      EXPECT_EQ(again.key_order, s.key_order);
    }
  }
}

TEST(SelectorProperties, NativeGqaEqualsReplicatedKv) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const Scene scene = small_scene(seed, 600);
  const std::int64_t L = 600, hq = 8, hk = 2, d = 64, group = hq / hk;
  HostTensor k_rep(scene.k.dtype(), {1, L, hq, d}), v_rep(scene.v.dtype(), {1, L, hq, d});
  for (std::int64_t t = 0; t < L; ++t) {
    for (std::int64_t h = 0; h < hq; ++h) {
      for (std::int64_t c = 0; c < d; ++c) {
        k_rep.ptr<std::uint16_t>()[(t * hq + h) * d + c] =
            scene.k.ptr<std::uint16_t>()[(t * hk + h / group) * d + c];
        v_rep.ptr<std::uint16_t>()[(t * hq + h) * d + c] =
            scene.v.ptr<std::uint16_t>()[(t * hk + h / group) * d + c];
      }
    }
  }
  for (const std::string& method : kSparseMethods) {
    const Selection native = make_selector(method, test_settings())
                                 ->select(inputs_of(scene.q.view(), scene.k.view(), scene.v.view(), 64));
    const Selection replicated = make_selector(method, test_settings())
                                     ->select(inputs_of(scene.q.view(), k_rep.view(), v_rep.view(), 64));
    EXPECT_EQ(native.mask.kv_indices(), replicated.mask.kv_indices()) << method;
    EXPECT_EQ(native.mask.kv_num_blocks(), replicated.mask.kv_num_blocks()) << method;
    EXPECT_EQ(native.key_order, replicated.key_order) << method;
  }
}

TEST(SelectorProperties, BottomRightAlignmentWithLongerKeys) {
  // q = the last 320 tokens of a 640-token scene, k/v = all 640: query block u's diagonal is key block u + 5.
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const Scene scene = small_scene(seed, 640);
  TensorView q = scene.q.view();
  q.data = static_cast<std::uint16_t*>(q.data) + 320 * q.stride[1];
  q.shape[1] = 320;
  const AttentionProblem p = describe_attention(q, scene.k.view(), scene.v.view());
  for (const std::string& method : {"prism", "rr", "xattn", "minference", "meanpool", "oracle", "dense"}) {
    SCOPED_TRACE(method);
    const Selection s =
        make_selector(method, test_settings())->select(inputs_of(q, scene.k.view(), scene.v.view(), 64));
    ASSERT_NO_THROW(s.mask.validate_for(p));
    for (std::int64_t h = 0; h < s.mask.heads(); ++h) {
      for (std::int64_t u = 0; u < 5; ++u) {
        const std::int32_t count = s.mask.row_count(0, h, u);
        ASSERT_GT(count, 0);
        EXPECT_LE(s.mask.row_indices(0, h, u)[count - 1], u + 5) << "row " << u << " sees past its diagonal";
        if (std::string(method) != "oracle")
          EXPECT_TRUE(s.mask.contains(0, h, u, u + 5)) << "diagonal of row " << u;
      }
    }
  }
  for (const std::string& method : {"pbs", "flexprefill"}) {
    EXPECT_THROW(
        make_selector(method, test_settings())->select(inputs_of(q, scene.k.view(), scene.v.view(), 64)),
        Error)
        << method;
  }
}

TEST(SelectorProperties, PrismMaskIsTheSameInBothRopeLayouts) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const Scene half = small_scene(seed, 1024, "slash-stress", RopeLayout::kRotateHalf);
  const Scene inter = small_scene(seed, 1024, "slash-stress", RopeLayout::kInterleaved);
  SelectorInputs a = inputs_of(half.q.view(), half.k.view(), half.v.view(), 64);
  SelectorInputs b = inputs_of(inter.q.view(), inter.k.view(), inter.v.view(), 64);
  b.rope_layout = RopeLayout::kInterleaved;
  const Selection sa = make_selector("prism")->select(a), sb = make_selector("prism")->select(b);
  EXPECT_EQ(sa.mask.kv_indices(), sb.mask.kv_indices());
  EXPECT_EQ(sa.mask.kv_num_blocks(), sb.mask.kv_num_blocks());
  // Reading the interleaved scene as rotate-half puts other dims into the bands: the mask changes.
  b.rope_layout = RopeLayout::kRotateHalf;
  EXPECT_NE(make_selector("prism")->select(b).mask.kv_indices(), sa.mask.kv_indices());
}

// The stride selectors' published block scores: each block row holds the probability mass of its stride rows
// (one per sampled query in RRAttention, one per stride row with an allowed key in XAttention; each row's
// softmax sums to 1), nothing above the causal diagonal, and bad settings name the parameter.
TEST(SelectorProperties, StrideBlockScoresHoldEachRowsProbabilityMass) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const Scene scene = small_scene(seed);
  const AttentionProblem p = describe_attention(scene.q.view(), scene.k.view(), scene.v.view());
  const std::int64_t block = 64, S = 8, per_block = block / S, lq = p.seqlen_q[0];
  const std::int64_t nq = (lq + block - 1) / block, nk = nq;
  const SelectorInputs in = inputs_of(scene.q.view(), scene.k.view(), scene.v.view(), block);
  for (const std::string method : {"rr", "xattn"}) {
    SCOPED_TRACE(method);
    const std::vector<double> scores =
        method == "rr" ? rr_block_scores(in, RRConfig{}) : xattention_block_scores(in, XAttentionConfig{});
    ASSERT_EQ(static_cast<std::int64_t>(scores.size()), p.heads_q * nq * nk);
    for (std::int64_t h = 0; h < p.heads_q; ++h) {
      const std::int64_t offset = method == "rr" ? h % S : 0;  // RR's sampled query of stride i: i S + offset
      for (std::int64_t u = 0; u < nq; ++u) {
        std::int64_t rows = 0;
        for (std::int64_t i = u * per_block; i < (u + 1) * per_block; ++i) rows += i * S + offset < lq;
        double mass = 0;
        for (std::int64_t v = 0; v < nk; ++v) {
          const double x = scores[(h * nq + u) * nk + v];
          ASSERT_GE(x, 0.0);
          if (v > u) ASSERT_EQ(x, 0.0) << "row " << u << " block " << v << " lies above the diagonal";
          mass += x;
        }
        EXPECT_NEAR(mass, static_cast<double>(rows), 1e-9) << "head " << h << " row " << u;
      }
    }
  }
  RRConfig bad_rr;
  bad_rr.tau = 0;
  EXPECT_EQ(testing::error_argument([&] { rr_block_scores(in, bad_rr); }), "rr.tau");
  RRConfig bad_rule;
  bad_rule.rule = "v3";
  EXPECT_EQ(testing::error_argument([&] { rr_block_scores(in, bad_rule); }), "rr.rule");
  XAttentionConfig bad_x;
  bad_x.stride = 7;
  EXPECT_EQ(testing::error_argument([&] { xattention_block_scores(in, bad_x); }), "xattn.stride");
}

// The vertical-slash selectors' published line scores: MInference's columns and diagonals each hold the last
// rows' probability mass (every row's softmax sums to 1, so the unforced lines of a kind sum to the rows,
// less what the forced lines held), the forced lines are +inf (30 columns, 100 diagonals), the kept counts
// are the clamped sizes; FlexPrefill's block lines hold the last block's averaged mass (1 a kind, less the
// forced block's), its budgets lie within [ceil(min_budget / B), nb]; bad settings name the parameter.
TEST(SelectorProperties, VerticalSlashLineScoresHoldTheLastRowsMass) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const Scene scene = small_scene(seed, 900);
  const AttentionProblem p = describe_attention(scene.q.view(), scene.k.view(), scene.v.view());
  const std::int64_t block = 64, L = p.seqlen_q[0], nb = (L + block - 1) / block;
  const SelectorInputs in = inputs_of(scene.q.view(), scene.k.view(), scene.v.view(), block);
  MInferenceConfig minference;
  minference.last_q = 40;
  minference.vertical_size = 200;
  minference.slash_size = 7;  // below the reference's floor of 50
  const RankedLines lines = minference_line_scores(in, minference);
  ASSERT_EQ(lines.width, L);
  ASSERT_EQ(lines.scores.size(), static_cast<std::size_t>(p.heads_q * 2 * L));
  for (std::int64_t h = 0; h < p.heads_q; ++h)
    for (std::int64_t kind = 0; kind < 2; ++kind) {
      const double* x = lines.scores.data() + (h * 2 + kind) * L;
      const std::int64_t forced = kind == 0 ? 30 : 100;
      double mass = 0;
      for (std::int64_t j = 0; j < L; ++j) {
        if (j < forced) {
          ASSERT_TRUE(std::isinf(x[j])) << "head " << h << " kind " << kind << " line " << j;
        } else {
          ASSERT_GE(x[j], 0.0);
          mass += x[j];
        }
      }
      EXPECT_GT(mass, 0.0);
      EXPECT_LT(mass, 40.0 + 1e-9) << "head " << h << " kind " << kind;
      EXPECT_EQ(lines.kept[h * 2 + kind], kind == 0 ? 200 : 50);
    }
  FlexPrefillConfig flex;
  flex.min_budget = 128;
  const RankedLines blocks = flexprefill_block_line_scores(in, flex);
  ASSERT_EQ(blocks.width, nb);
  for (std::int64_t h = 0; h < p.heads_q; ++h)
    for (std::int64_t kind = 0; kind < 2; ++kind) {
      const double* x = blocks.scores.data() + (h * 2 + kind) * nb;
      const std::int64_t forced =
          kind == 0 ? 0 : nb - 1;  // block 0 of the verticals, the main diagonal's slash
      double mass = 0;
      for (std::int64_t v = 0; v < nb; ++v) {
        if (v == forced) {
          ASSERT_TRUE(std::isinf(x[v]));
        } else {
          mass += x[v];
        }
      }
      EXPECT_GT(mass, 0.0);
      EXPECT_LT(mass, 1.0 + 1e-9);
      EXPECT_GE(blocks.kept[h * 2 + kind], 2);
      EXPECT_LE(blocks.kept[h * 2 + kind], nb);
    }
  MInferenceConfig bad_minference;
  bad_minference.slash_size = 0;
  EXPECT_EQ(testing::error_argument([&] { minference_line_scores(in, bad_minference); }),
            "minference.slash-size");
  FlexPrefillConfig bad_flex;
  bad_flex.gamma = 0;
  EXPECT_EQ(testing::error_argument([&] { flexprefill_block_line_scores(in, bad_flex); }),
            "flexprefill.gamma");
}

// The stride selectors' settings check (RRConfig / XAttentionConfig::check, which the CPU and GPU selectors
// call): each bad value names its setting; the block's conditions wait for a block.
TEST(SelectorProperties, StrideConfigChecksNameEachSetting) {
  auto argument = [](auto config, auto spoil, std::int64_t block) {
    spoil(config);
    return testing::error_argument([&] { config.check(block); });
  };
  using R = RRConfig&;
  EXPECT_EQ(argument(RRConfig{}, [](R) {}, 128), "<no error>");
  EXPECT_EQ(argument(RRConfig{}, [](R c) { c.offset = "shifted"; }, 128), "rr.offset");
  EXPECT_EQ(argument(RRConfig{}, [](R c) { c.t3 = "exact"; }, 128), "rr.t3");
  EXPECT_EQ(argument(RRConfig{}, [](R c) { c.key_sums = "fp8"; }, 128), "rr.key-sums");
  EXPECT_EQ(argument(RRConfig{}, [](R c) { c.passes = "three"; }, 0), "rr.passes");
  EXPECT_EQ(argument(RRConfig{}, [](R c) { c.tau = 1.5; }, 0), "rr.tau");
  EXPECT_EQ(argument(RRConfig{}, [](R c) { c.stride = 3; }, 128), "rr.stride");
  EXPECT_EQ(argument(RRConfig{}, [](R c) { c.stride = 3; }, 0), "<no error>");
  using X = XAttentionConfig&;
  EXPECT_EQ(argument(XAttentionConfig{}, [](X) {}, 64), "<no error>");
  EXPECT_EQ(argument(XAttentionConfig{}, [](X c) { c.t3 = "exact"; }, 64), "xattn.t3");
  EXPECT_EQ(argument(XAttentionConfig{}, [](X c) { c.tau = 0; }, 64), "xattn.tau");
  EXPECT_EQ(argument(XAttentionConfig{}, [](X c) { c.chunk_size = 100; }, 64), "xattn.chunk-size");
  EXPECT_EQ(argument(XAttentionConfig{}, [](X c) { c.chunk_size = 100; }, 0), "<no error>");
  EXPECT_EQ(argument(XAttentionConfig{}, [](X c) { c.chunk_size = 256; }, 64), "<no error>");
}

TEST(SelectorProperties, InvalidSettingsNameTheParameter) {
  auto argument = [](const std::string& method, const SelectorSettings& s) {
    const Scene scene = small_scene(1, 300);
    try {
      make_selector(method, s)->select(inputs_of(scene.q.view(), scene.k.view(), scene.v.view(), 128));
    } catch (const Error& e) {
      return e.argument();
    }
    return std::string("<no error>");
  };
  SelectorSettings s;
  s.prism.d_high = 7;
  EXPECT_EQ(argument("prism", s), "prism.d-high");
  s = {};
  s.xattn.stride = 3;
  EXPECT_EQ(argument("xattn", s), "xattn.stride");
  s = {};
  s.pbs.segment = 100;
  EXPECT_EQ(argument("pbs", s), "pbs.segment");
  s = {};
  s.oracle.p = 1.5;
  EXPECT_EQ(argument("oracle", s), "oracle.p");
  s = {};
  s.meanpool.rule = "t3";
  EXPECT_EQ(argument("meanpool", s), "meanpool.rule");
  EXPECT_EQ(argument("nosuch", {}), "method");
}

}  // namespace
}  // namespace sparsefill
