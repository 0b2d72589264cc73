// One warpgroup's wgmma GEMM (cute), shared by the Hopper attention kernel and the selection kernels that
// multiply staged tiles on wgmma (PBS's proxy, the stride selectors). warpgroup_gemm waits for its products;
// warpgroup_gemm_issue returns at once, so the warpgroup can work on other registers (an earlier tile's
// accumulators) until warpgroup_gemm_wait.
#pragma once
#include <cute/tensor.hpp>

namespace sparsefill::cuda {

// Issues C (+)= A B over all k-blocks of the operands as one wgmma batch of the warpgroup (C = A B when
// zero_init). C must not be touched until warpgroup_gemm_wait(C).
template <class Mma, class A, class B, class C>
__device__ void warpgroup_gemm_issue(Mma& mma, const A& a, const B& b, C& c, bool zero_init) {
  using namespace cute;
  warpgroup_fence_operand(c);
  warpgroup_arrive();
  mma.accumulate_ = zero_init ? GMMA::ScaleOut::Zero : GMMA::ScaleOut::One;
#pragma unroll
  for (int k = 0; k < size<2>(a); ++k) {
    cute::gemm(mma, a(_, _, k), b(_, _, k), c);
    mma.accumulate_ = GMMA::ScaleOut::One;
  }
  warpgroup_commit_batch();
}

// Waits for every wgmma batch the warpgroup issued; C, the last batch's accumulators, is then written.
template <class C>
__device__ void warpgroup_gemm_wait(C& c) {
  cute::warpgroup_wait<0>();
  cute::warpgroup_fence_operand(c);
}

// C (+)= A B over all k-blocks of the operands, as one wgmma batch of the warpgroup; returns when C is
// written.
template <bool kZeroInit, class Mma, class A, class B, class C>
__device__ void warpgroup_gemm(Mma& mma, const A& a, const B& b, C& c) {
  warpgroup_gemm_issue(mma, a, b, c, kZeroInit);
  warpgroup_gemm_wait(c);
}

}  // namespace sparsefill::cuda
