// One warpgroup's wgmma GEMM (cute), shared by the Hopper attention kernel and the selection kernels that
// multiply staged tiles on wgmma (PBS's proxy, the stride selectors). warpgroup_gemm waits for its products;
// a batch built from warpgroup_gemm_begin / _add / _commit returns at once, so the warpgroup can work on
// other registers (an earlier tile's accumulators) until warpgroup_gemm_wait.
#pragma once
#include <cstdint>
#include <cute/tensor.hpp>

namespace sparsefill::cuda {

// A wgmma batch of the warpgroup: warpgroup_gemm_begin, then one or more warpgroup_gemm_add, each issuing
// C (+)= A B over all k-blocks of its operands (C = A B when zero_init), then warpgroup_gemm_commit.
template <class C>
__device__ void warpgroup_gemm_begin(C& c) {
  cute::warpgroup_fence_operand(c);
  cute::warpgroup_arrive();
}
template <class Mma, class A, class B, class C>
__device__ void warpgroup_gemm_add(Mma& mma, const A& a, const B& b, C& c, bool zero_init) {
  using namespace cute;
  mma.accumulate_ = zero_init ? GMMA::ScaleOut::Zero : GMMA::ScaleOut::One;
#pragma unroll
  for (int k = 0; k < size<2>(a); ++k) {
    cute::gemm(mma, a(_, _, k), b(_, _, k), c);
    mma.accumulate_ = GMMA::ScaleOut::One;
  }
}
__device__ inline void warpgroup_gemm_commit() {
  cute::warpgroup_commit_batch();
}

// A wgmma operand fragment from shared memory (a tensor of GMMA descriptors) for the same layout `bytes`
// further on, e.g. another stage of a ring: the descriptors' start addresses move (in 16-byte units) instead
// of being rebuilt from a pointer. bytes: a multiple of the layout's swizzle atom (1024 for 128-byte
// swizzles).
template <class Fragment>
__device__ auto shifted_operand(const Fragment& fragment, std::uint32_t bytes) {
  return cute::make_tensor(fragment.data() + bytes / 16, fragment.layout());
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
  warpgroup_gemm_begin(c);
  warpgroup_gemm_add(mma, a, b, c, kZeroInit);
  warpgroup_gemm_commit();
  warpgroup_gemm_wait(c);
}

}  // namespace sparsefill::cuda
