#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "sparsefill/error.hpp"
#include "sparsefill/rope.hpp"
#include "support/random_tensors.hpp"

namespace sparsefill {
namespace {

constexpr double kTwoPi = 6.283185307179586;

TEST(Rope, WavelengthsMatchTheSpecTable) {
  const auto w = rope_frequencies(128, RopeConfig{});
  EXPECT_NEAR(kTwoPi / w[0], 6.283, 1e-3);
  EXPECT_NEAR(kTwoPi / w[8], 32.4, 0.2);
  EXPECT_NEAR(kTwoPi / w[32], 4443, 5);
  EXPECT_NEAR(kTwoPi / w[48], 118143, 200);
  EXPECT_NEAR(kTwoPi / w[63], 2.56e6, 1e4);
}

TEST(Rope, Llama3ScalingKeepsHighAndDividesLowFrequencies) {
  RopeConfig scaled;
  scaled.llama3_scaling = true;
  const auto plain = rope_frequencies(128, RopeConfig{}), w = rope_frequencies(128, scaled);
  EXPECT_DOUBLE_EQ(w[0], plain[0]);          // wavelength 6 < 2048
  EXPECT_DOUBLE_EQ(w[63], plain[63] / 8.0);  // wavelength > 8192
  EXPECT_LT(w[30], plain[30]);               // smooth band in between
  EXPECT_GT(w[30], plain[30] / 8.0);
}

TEST(Rope, DotProductDependsOnlyOnRelativePosition) {
  std::mt19937_64 rng(testing::fresh_seed());
  std::normal_distribution<float> normal;
  for (RopeLayout layout : {RopeLayout::kRotateHalf, RopeLayout::kInterleaved}) {
    const auto w = rope_frequencies(64, RopeConfig{});
    std::vector<float> q(64), k(64);
    for (auto& x : q) x = normal(rng);
    for (auto& x : k) x = normal(rng);
    auto rotated_dot = [&](double t, double s) {
      std::vector<float> a = q, b = k;
      apply_rope(a.data(), 64, t, w, layout);
      apply_rope(b.data(), 64, s, w, layout);
      double dot = 0;
      for (int c = 0; c < 64; ++c) dot += static_cast<double>(a[c]) * b[c];
      return dot;
    };
    EXPECT_NEAR(rotated_dot(1000, 900), rotated_dot(100, 0), 1e-3);
    EXPECT_NEAR(rotated_dot(57, 57), rotated_dot(0, 0), 1e-3);
  }
}

TEST(Rope, PairDimsPerLayout) {
  using Dims = std::pair<std::int64_t, std::int64_t>;
  EXPECT_EQ(rope_pair_dims(3, 128, RopeLayout::kRotateHalf), Dims(3, 67));
  EXPECT_EQ(rope_pair_dims(3, 128, RopeLayout::kInterleaved), Dims(6, 7));
  EXPECT_THROW(rope_frequencies(7, RopeConfig{}), Error);
}

}  // namespace
}  // namespace sparsefill
