#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "sparsefill/dtype.hpp"
#include "sparsefill/error.hpp"
#include "support/random_tensors.hpp"

namespace sparsefill {
namespace {

TEST(DType, Bf16KnownBitPatterns) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(float_to_bf16(-2.0f), 0xC000);
  EXPECT_EQ(bf16_to_float(0x3F80), 1.0f);
  // 1 + 2^-8 is exactly halfway between bf16 neighbours 1 and 1 + 2^-7: ties to even (1.0).
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);
  EXPECT_EQ(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(NAN))));
}

TEST(DType, Fp16KnownBitPatterns) {
  EXPECT_EQ(float_to_fp16(1.0f), 0x3C00);
  EXPECT_EQ(float_to_fp16(-2.0f), 0xC000);
  EXPECT_EQ(float_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(float_to_fp16(1e6f), 0x7C00);
  EXPECT_EQ(float_to_fp16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(fp16_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_to_float(0x3555), 0.333251953125f);
  EXPECT_TRUE(std::isnan(fp16_to_float(float_to_fp16(NAN))));
}

TEST(DType, RoundTripsAreWithinHalfAnUlp) {
  std::mt19937_64 rng(testing::fresh_seed());
  std::uniform_real_distribution<float> exponent(-12.0f, 12.0f);
  for (int i = 0; i < 20000; ++i) {
    const float x =
        std::ldexp(1.0f + std::uniform_real_distribution<float>(0, 1)(rng), static_cast<int>(exponent(rng))) *
        (i % 2 ? 1.0f : -1.0f);
    EXPECT_LE(std::fabs(bf16_to_float(float_to_bf16(x)) - x), std::fabs(x) * std::ldexp(1.0f, -8) * 1.0001f)
        << x;
    EXPECT_LE(std::fabs(fp16_to_float(float_to_fp16(x)) - x), std::fabs(x) * std::ldexp(1.0f, -11) * 1.0001f)
        << x;
  }
}

TEST(DType, RoundToDtypeGoesThroughFp32ToTheNearestEven) {
  const double above_half = 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30);  // just above a bf16 tie
  EXPECT_EQ(round_to_dtype(above_half, DType::kFP64), above_half);
  EXPECT_EQ(round_to_dtype(above_half, DType::kFP32), 1.0 + std::ldexp(1.0, -8));
  EXPECT_EQ(round_to_dtype(above_half, DType::kBF16), 1.0);  // the fp32 step lands on the tie: even
  EXPECT_EQ(round_to_dtype(1.0 + 3 * std::ldexp(1.0, -11), DType::kFP16), 1.0 + std::ldexp(1.0, -9));
  try {
    round_to_dtype(1.0, DType::kInt32);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "dtype");
  }
}

TEST(DType, ParseNamesTheArgument) {
  EXPECT_EQ(parse_dtype("bf16", "--dtype"), DType::kBF16);
  try {
    parse_dtype("float8", "--dtype");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "--dtype");
  }
}

}  // namespace
}  // namespace sparsefill
