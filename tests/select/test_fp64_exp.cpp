// The row kernel's branch-free exp (cuda/select/fp64_exp.cuh) against the C library's exp: within 1 ulp on
// fresh random arguments over the whole non-positive range (normal and subnormal results), exact at 0, and 0
// below the smallest subnormal. The host runs the same fma sequence as the device, so its bits are the GPU's.
// The fp32-precision form's host version (the device's differs by its ex2.approx, 2 ulp of fp32, inside the
// documented bound): within (2 |x| + 4) 2^-23, relative, over fp32's normal results, exact at 0, 0 below.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>

#include "select/fp64_exp.cuh"
#include "support/random_tensors.hpp"

namespace sparsefill {
namespace {

namespace gpu = cuda::select;

// Units in the last place between two non-negative finite doubles.
std::uint64_t ulps_apart(double a, double b) {
  const std::uint64_t x = gpu::bits_of_double(a), y = gpu::bits_of_double(b);
  return x > y ? x - y : y - x;
}

TEST(Fp64Exp, WithinOneUlpOfTheLibraryOverTheNonPositiveRange) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  struct Range {
    const char* label;
    double lo, hi;
  };
  for (const Range& range :
       {Range{"[-1e-3, 0]", -1e-3, 0.0}, Range{"[-1, 0]", -1.0, 0.0}, Range{"[-40, -1]", -40.0, -1.0},
        Range{"[-708, -40]", -708.0, -40.0}, Range{"subnormal results [-745.1, -708.4]", -745.1, -708.4}}) {
    std::uniform_real_distribution<double> draw(range.lo, range.hi);
    int equal = 0, off_by_one = 0;
    constexpr int kDraws = 200000;
    for (int i = 0; i < kDraws; ++i) {
      const double x = draw(rng), got = gpu::exp_nonpositive(x), want = std::exp(x);
      const std::uint64_t apart = ulps_apart(got, want);
      ASSERT_LE(apart, 1u) << "x = " << x << ": " << got << " vs " << want;
      (apart == 0 ? equal : off_by_one) += 1;
    }
    std::printf("  %s: %d of %d equal to std::exp, %d one ulp apart\n", range.label, equal, kDraws,
                off_by_one);
  }
}

TEST(Fp64Exp, ExactAtZeroAndZeroBelowTheSmallestSubnormal) {
  EXPECT_EQ(gpu::exp_nonpositive(0.0), 1.0);
  EXPECT_EQ(gpu::exp_nonpositive(-0.0), 1.0);
  EXPECT_EQ(gpu::exp_nonpositive(-746.0), 0.0);
  EXPECT_EQ(gpu::exp_nonpositive(-1e300), 0.0);
  EXPECT_EQ(gpu::exp_nonpositive(-std::numeric_limits<double>::infinity()), 0.0);
  EXPECT_GT(gpu::exp_nonpositive(-745.0), 0.0);  // 5e-324, the smallest subnormal
  EXPECT_EQ(gpu::exp_nonpositive(-745.0), std::exp(-745.0));
}

TEST(Fp64Exp, Fp32FormWithinItsBoundAndFlushedBelowTheNormalRange) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> draw(-87.0, 0.0);
  double worst = 0.0;  // the largest error found, in units of the bound
  for (int i = 0; i < 200000; ++i) {
    const double x = i < 1000 ? draw(rng) * 1e-4 : draw(rng), got = gpu::exp_nonpositive_fp32(x),
                 want = std::exp(x);
    const double bound = (2.0 * std::fabs(x) + 4.0) * std::ldexp(1.0, -23);
    ASSERT_LE(std::fabs(got - want), bound * want) << "x = " << x << ": " << got << " vs " << want;
    worst = std::max(worst, std::fabs(got - want) / (bound * want));
  }
  std::printf("  fp32 form on [-87, 0]: largest error %.3f of the bound\n", worst);
  EXPECT_EQ(gpu::exp_nonpositive_fp32(0.0), 1.0);
  EXPECT_EQ(gpu::exp_nonpositive_fp32(-0.0), 1.0);
  EXPECT_EQ(gpu::exp_nonpositive_fp32(-88.0), 0.0);  // e^-88 is below fp32's smallest normal
  EXPECT_EQ(gpu::exp_nonpositive_fp32(-1e300), 0.0);
  EXPECT_EQ(gpu::exp_nonpositive_fp32(-std::numeric_limits<double>::infinity()), 0.0);
}

}  // namespace
}  // namespace sparsefill
