// Online softmax on wgmma accumulators (design note).
//
// A consumer thread holds, for its two rows (r = 0, 1), the scores of an m64nN accumulator at linear register
// index i = c + 2 r + 4 j: row warp * 16 + lane / 4 + 8 r, column 8 j + 2 (lane % 4) + c. The same index
// order is the A operand of the rs P V wgmma for 16-bit types (k-block n takes registers 8n..8n+7), so P is the
// score registers converted in place. Each row's four threads share its maximum by quad shuffles; the row sums
// stay per thread (every thread scales by the same factor) and are reduced once at the end. Base-2 exponentials
// with the scale folded in: p = 2^(s * scale_log2 - max * scale_log2).
#pragma once
#include <cute/tensor.hpp>
#include <cutlass/numeric_conversion.h>

#include <cmath>

namespace sparsefill::cuda::wgmma {

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// Position of accumulator register i of this thread inside its warpgroup's 64-row tile.
struct AccumulatorCoord {
  int row_base, col_base;  // of register 0
  __device__ explicit AccumulatorCoord(int thread_in_warpgroup)
      : row_base((thread_in_warpgroup / 32) * 16 + (thread_in_warpgroup % 32) / 4),
        col_base((thread_in_warpgroup % 4) * 2) {}
  __device__ static int row_half(int i) { return (i >> 1) & 1; }
  __device__ int row(int i) const { return row_base + 8 * row_half(i); }
  __device__ int col(int i) const { return col_base + 8 * (i >> 2) + (i & 1); }
};

struct OnlineSoftmax {
  float row_max[2] = {-INFINITY, -INFINITY};
  float row_sum[2] = {0.0f, 0.0f};  // this thread's share of the row sum
  float scale_log2;

  __device__ explicit OnlineSoftmax(float scale) : scale_log2(scale) {}

  // Turns scores (masked ones already -inf) into unnormalised probabilities in place and rescales the output
  // accumulator by how much each row's running maximum grew.
  template <class Scores, class Output>
  __device__ void step(Scores& s, Output& o) {
    float new_max[2] = {row_max[0], row_max[1]};
#pragma unroll
    for (int i = 0; i < cute::size(s); ++i) {
      const int r = AccumulatorCoord::row_half(i);
      new_max[r] = fmaxf(new_max[r], s(i));
    }
    float correction[2], base[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      new_max[r] = quad_max(new_max[r]);
      const bool none = new_max[r] == -INFINITY;  // no visible key yet: keep everything at zero
      base[r] = none ? 0.0f : new_max[r] * scale_log2;
      correction[r] = none ? 1.0f : fast_exp2(row_max[r] * scale_log2 - base[r]);
      row_max[r] = new_max[r];
      row_sum[r] *= correction[r];
    }
#pragma unroll
    for (int i = 0; i < cute::size(s); ++i) {
      const int r = AccumulatorCoord::row_half(i);
      s(i) = fast_exp2(fmaf(s(i), scale_log2, -base[r]));
      row_sum[r] += s(i);
    }
#pragma unroll
    for (int i = 0; i < cute::size(o); ++i) o(i) *= correction[AccumulatorCoord::row_half(i)];
  }

  // Completes the row sums; returns 1 / sum per row (0 for a row without a visible key).
  __device__ void finish(float (&inverse)[2], float (&lse)[2]) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float sum = quad_sum(row_sum[r]);
      const bool empty = !(sum > 0.0f);
      inverse[r] = empty ? 0.0f : 1.0f / sum;
      lse[r] = empty ? -INFINITY : (row_max[r] * scale_log2 + log2f(sum)) * 0.6931471805599453f;
    }
  }
};

// P in the input dtype with the layout of the rs wgmma's A operand: ((2, 2, 2), 1, keys / 16).
template <typename Element, int kKeys, class Scores>
__device__ auto convert_scores_to_operand(const Scores& s) {
  using namespace cute;
  Tensor p = make_tensor<Element>(Layout<Shape<Shape<_2, _2, _2>, _1, Int<kKeys / 16>>>{});
  static_assert(decltype(size(p))::value == decltype(size(s))::value, "score and operand sizes differ");
  cutlass::NumericArrayConverter<Element, float, 2> convert;
#pragma unroll
  for (int i = 0; i < size(s); i += 2) {
    cutlass::Array<float, 2> scores;
    scores[0] = s(i);
    scores[1] = s(i + 1);
    const cutlass::Array<Element, 2> pair = convert(scores);
    p(i) = pair[0];
    p(i + 1) = pair[1];
  }
  return p;
}

}  // namespace sparsefill::cuda::wgmma
