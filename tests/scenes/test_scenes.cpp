// Scene properties: patterns arise from RoPE and content as designed, and presets follow their priors.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "sparsefill/error.hpp"
#include "sparsefill/scene.hpp"
#include "support/random_tensors.hpp"

namespace sparsefill {
namespace {

// Softmax probabilities of query t of head h over keys 0..t (causal, scale 1/sqrt(d)), in fp64.
std::vector<double> attention_row(const Scene& s, std::int64_t h, std::int64_t t) {
  const auto& c = s.config;
  const std::int64_t g = h / (c.heads_q / c.heads_kv), d = c.head_dim;
  std::vector<double> logits(static_cast<std::size_t>(t + 1));
  double m = -1e300;
  for (std::int64_t j = 0; j <= t; ++j) {
    double dot = 0;
    for (std::int64_t x = 0; x < d; ++x) {
      dot += load_as_double(s.q.data(), s.q.dtype(), (t * c.heads_q + h) * d + x) *
             load_as_double(s.k.data(), s.k.dtype(), (j * c.heads_kv + g) * d + x);
    }
    logits[j] = dot / std::sqrt(static_cast<double>(d));
    m = std::max(m, logits[j]);
  }
  double z = 0;
  for (double& l : logits) z += (l = std::exp(l - m));
  for (double& l : logits) l /= z;
  return logits;
}

SceneConfig small(const std::string& preset, std::uint64_t seed, std::int64_t len = 1024) {
  SceneConfig c;
  c.preset = preset;
  c.seqlen = len;
  c.heads_q = 8;
  c.heads_kv = 2;
  c.seed = seed;
  return c;
}

TEST(Scenes, DeterministicInSeed) {
  const std::uint64_t seed = testing::fresh_seed();
  const Scene a = generate_scene(small("llama31-like", seed, 300)),
              b = generate_scene(small("llama31-like", seed, 300));
  const Scene c = generate_scene(small("llama31-like", seed + 1, 300));
  EXPECT_EQ(a.q.to_doubles(), b.q.to_doubles());
  EXPECT_EQ(a.k.to_doubles(), b.k.to_doubles());
  EXPECT_EQ(a.v.to_doubles(), b.v.to_doubles());
  EXPECT_NE(a.k.to_doubles(), c.k.to_doubles());
}

TEST(Scenes, PureSlashHeadsPeakAtTheirOffset) {
  for (int trial = 0; trial < 2; ++trial) {
    const std::uint64_t seed = testing::fresh_seed();
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    const Scene s = generate_scene(small("slash", seed, 2048));
    for (std::int64_t h = 0; h < s.config.heads_q; ++h) {
      const std::int64_t offset = s.heads[h].slash_offsets.at(0);
      EXPECT_NE(offset % 128, 0);
      int hits = 0, total = 0;
      for (std::int64_t t = offset + 50; t < 2048; t += 97) {
        const auto p = attention_row(s, h, t);
        const auto peak = std::max_element(p.begin(), p.end()) - p.begin();
        hits += std::abs((t - peak) - offset) <= 2;
        ++total;
      }
      EXPECT_GE(hits, total * 9 / 10) << "head " << h << " offset " << offset;
    }
  }
}

TEST(Scenes, SinkHeadsPutTheirTargetMassOnTokenZero) {
  // The calibration matches the mean sink share of sampled queries; queries differ (their content differs),
  // so the test checks each head's mean over other queries loosely and the average over heads tightly.
  // Measured over fresh seeds: the average of 8 heads had a standard deviation of 0.0225 (150 seeds; 5 past
  // the former 0.05), that of 32 heads 0.0122 (60 seeds, none of their 1920 heads off by 0.2), so 0.06 is ~5
  // of them.
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  SceneConfig config = small("sink", seed, 2048);
  config.heads_q = 32;
  config.heads_kv = 8;
  const Scene s = generate_scene(config);
  double total_error = 0;
  for (std::int64_t h = 0; h < s.config.heads_q; ++h) {
    double mass = 0;
    int n = 0;
    for (std::int64_t t = 256; t < 2048; t += 29, ++n) mass += attention_row(s, h, t)[0];
    mass /= n;
    EXPECT_NEAR(mass, s.heads[h].sink_mass_target, 0.2) << "head " << h;
    EXPECT_GT(s.heads[h].sink_mass_target, 0.29);
    total_error += mass - s.heads[h].sink_mass_target;
  }
  EXPECT_NEAR(total_error / static_cast<double>(s.config.heads_q), 0.0, 0.06);
}

TEST(Scenes, RealisticPresetsReproduceTheirPriorMixture) {
  const HeadMixture llama = preset_prior_mixture("llama31-like");
  EXPECT_NEAR(llama.vertical, 0.15, 0.01);  // scenes.md: 15% / 58% / 27%
  EXPECT_NEAR(llama.slash, 0.58, 0.01);
  EXPECT_NEAR(llama.broad, 0.27, 0.01);
  const HeadMixture qwen = preset_prior_mixture("qwen25-like");
  EXPECT_NEAR(qwen.vertical, 0.26, 0.01);
  EXPECT_NEAR(qwen.broad, 0.52, 0.01);
  for (const char* preset : {"llama31-like", "qwen25-like"}) {
    SceneConfig c = small(preset, testing::fresh_seed(), 16);
    c.heads_q = 512;
    c.heads_kv = 8;
    c.head_dim = 32;
    const Scene s = generate_scene(c);
    const HeadMixture want = preset_prior_mixture(preset);
    double vertical = 0, slash = 0, broad = 0, retrieval = 0;
    for (const auto& r : s.heads) {
      vertical += r.kind == HeadKind::kVertical;
      slash += r.kind == HeadKind::kSlash;
      broad += r.kind == HeadKind::kBroad;
      retrieval += r.retrieval;
    }
    EXPECT_NEAR(vertical / 512, want.vertical, 0.05) << preset;
    EXPECT_NEAR(slash / 512, want.slash, 0.05) << preset;
    EXPECT_NEAR(broad / 512, want.broad, 0.05) << preset;
    EXPECT_GT(retrieval / 512, 0.005) << preset;
    EXPECT_LT(retrieval / 512, 0.07) << preset;
  }
}

TEST(Scenes, LayoutsDescribeTheSameVectors) {
  const std::uint64_t seed = testing::fresh_seed();
  SceneConfig c = small("llama31-like", seed, 200);
  c.dtype = DType::kFP32;
  const Scene half = generate_scene(c);
  c.rope_layout = RopeLayout::kInterleaved;
  const Scene inter = generate_scene(c);
  const std::int64_t d = half.config.head_dim;
  for (std::int64_t row = 0; row < 200 * 8; row += 37) {
    for (std::int64_t i = 0; i < d / 2; ++i) {
      ASSERT_EQ(half.q.ptr<float>()[row * d + i], inter.q.ptr<float>()[row * d + 2 * i]);
      ASSERT_EQ(half.q.ptr<float>()[row * d + i + d / 2], inter.q.ptr<float>()[row * d + 2 * i + 1]);
    }
  }
}

TEST(Scenes, RejectsBadConfigsNamingTheField) {
  auto field = [](SceneConfig c) {
    try {
      generate_scene(c);
    } catch (const Error& e) {
      return e.argument();
    }
    return std::string("<no error>");
  };
  SceneConfig c = small("llama31-like", 1, 64);
  c.preset = "nonexistent";
  EXPECT_EQ(field(c), "preset");
  c = small("llama31-like", 1, 0);
  EXPECT_EQ(field(c), "seqlen");
  c = small("llama31-like", 1, 64);
  c.heads_kv = 3;
  EXPECT_EQ(field(c), "heads_kv");
  c = small("llama31-like", 1, 64);
  c.head_dim = 20;
  EXPECT_EQ(field(c), "head_dim");
  c = small("llama31-like", 1, 64);
  c.dtype = DType::kInt32;
  EXPECT_EQ(field(c), "dtype");
}

TEST(Scenes, EveryPresetGeneratesFiniteTensors) {
  for (const auto& preset : scene_presets()) {
    const Scene s = generate_scene(small(preset.name, testing::fresh_seed(), 129));
    EXPECT_TRUE(all_finite(s.q.view()) && all_finite(s.k.view()) && all_finite(s.v.view())) << preset.name;
  }
}

}  // namespace
}  // namespace sparsefill
