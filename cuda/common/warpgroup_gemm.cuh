// One warpgroup's synchronous wgmma GEMM (cute), shared by the Hopper attention kernel and the selection
// kernels that multiply staged tiles on wgmma (PBS's proxy).
#pragma once
#include <cute/tensor.hpp>

namespace sparsefill::cuda {

// C (+)= A B over all k-blocks of the operands, as one wgmma batch of the warpgroup; returns when C is
// written.
template <bool kZeroInit, class Mma, class A, class B, class C>
__device__ void warpgroup_gemm(Mma& mma, const A& a, const B& b, C& c) {
  using namespace cute;
  warpgroup_fence_operand(c);
  warpgroup_arrive();
  if constexpr (kZeroInit) mma.accumulate_ = GMMA::ScaleOut::Zero;
#pragma unroll
  for (int k = 0; k < size<2>(a); ++k) {
    cute::gemm(mma, a(_, _, k), b(_, _, k), c);
    mma.accumulate_ = GMMA::ScaleOut::One;
  }
  warpgroup_commit_batch();
  warpgroup_wait<0>();
  warpgroup_fence_operand(c);
}

}  // namespace sparsefill::cuda
