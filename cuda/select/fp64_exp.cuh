// exp(x) for x <= 0 in fp64 without branches, for the selectors' softmax numerators exp(logit - max), and
// the row kernel's faster form at fp32's precision (exp_nonpositive_fp32, at the end).
//
// CUDA's exp(double) takes a branch to a slow path for large |x|, which keeps the compiler from interleaving
// the unrolled copies of the exp pass, so each copy's chain of ~15 dependent DFMA runs alone. This form has
// no branch: x = k ln2 + r with k = rint(x / ln2) and |r| <= ln2 / 2 (ln2 split in two parts so that r is
// exact to ~2^-60), exp(r) by its Taylor polynomial of degree 13 (truncation below 2^-57 on that range), then
// 2^k applied as two exact powers of two, 2^(k - k/2) and 2^(k/2), so that a subnormal result is rounded
// once. x below -750 gives 0 (exp(-745.2) is already below the smallest subnormal). The error is within ~1
// ulp of the exact value, as CUDA's exp (tests/select/test_fp64_exp.cpp measures it against std::exp). Host
// and device compute the same bits: every step is an fma, a multiply or integer arithmetic on the bit
// pattern.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/host_device.hpp"

namespace sparsefill::cuda::select {

SPARSEFILL_HOST_DEVICE inline double double_from_bits(std::uint64_t bits) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(bits));
#else
  double x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
#endif
}

SPARSEFILL_HOST_DEVICE inline std::uint64_t bits_of_double(double x) {
#if defined(__CUDA_ARCH__)
  return static_cast<std::uint64_t>(__double_as_longlong(x));
#else
  std::uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
#endif
}

// 2^e for -1022 <= e <= 1023.
SPARSEFILL_HOST_DEVICE inline double power_of_two(int e) {
  return double_from_bits(static_cast<std::uint64_t>(e + 1023) << 52);
}

SPARSEFILL_HOST_DEVICE inline double exp_nonpositive(double x) {
  constexpr double kLog2e = 1.4426950408889634074;
  // ln 2 to 32 bits (k * kLn2Hi is exact for |k| < 2^21), and the rest.
  constexpr double kLn2Hi = 6.93147180369123816490e-01;
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  constexpr double kRound = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
  x = fmax(x, -750.0);
  const double shifted = fma(x, kLog2e, kRound);  // k + 1.5 * 2^52, k = rint(x log2 e)
  const double k = shifted - kRound;
  const double r = fma(k, -kLn2Lo, fma(k, -kLn2Hi, x));
  // Taylor coefficients 1 / n!, n = 13 .. 2, Horner's rule.
  double p = 1.0 / 6227020800.0;
  p = fma(p, r, 1.0 / 479001600.0);
  p = fma(p, r, 1.0 / 39916800.0);
  p = fma(p, r, 1.0 / 3628800.0);
  p = fma(p, r, 1.0 / 362880.0);
  p = fma(p, r, 1.0 / 40320.0);
  p = fma(p, r, 1.0 / 5040.0);
  p = fma(p, r, 1.0 / 720.0);
  p = fma(p, r, 1.0 / 120.0);
  p = fma(p, r, 1.0 / 24.0);
  p = fma(p, r, 1.0 / 6.0);
  p = fma(p, r, 0.5);
  p = fma(p, r, 1.0);
  p = fma(p, r, 1.0);
  // k in [-1083, 0] from the low word of `shifted`; both halves are at least -542, so both powers are normal.
  const int e = static_cast<int>(static_cast<std::uint32_t>(bits_of_double(shifted)));
  const int half = e / 2;
  return p * power_of_two(e - half) * power_of_two(half);
}

// exp(x) for x <= 0 at fp32's precision, returned as a double: 2^y, y = fp32(x) * log2 e, on the
// special-function unit (ex2.approx, 2 ulp), results below fp32's normal range flushed to zero; exp(0) is
// exactly 1. The relative error is below (2 |x| + 4) * 2^-23 (the rounding of y dominates for large |x|;
// tests/select/test_fp64_exp.cpp bounds the host form). The host form (the device emulator's) rounds
// std::exp2 to fp32 and flushes alike, so it may differ from the device's in the last fp32 bits.
SPARSEFILL_HOST_DEVICE inline double exp_nonpositive_fp32(double x) {
  const float y = static_cast<float>(x) * 1.44269504088896341f;
#if defined(__CUDA_ARCH__)
  float e;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e) : "f"(y));
#else
  float e = static_cast<float>(std::exp2(static_cast<double>(y)));
  if (e < 1.17549435e-38f) e = 0.0f;
#endif
  return static_cast<double>(e);
}

}  // namespace sparsefill::cuda::select
