// Reductions over a whole CTA in a fixed order, so that a sum is the same on every run: each warp reduces by
// shuffles, thread 0 combines the warps' results in warp order, and every thread receives the total. Plain
// device code (the device emulator runs it on the host).
#pragma once

namespace sparsefill::cuda::select {

inline constexpr int kCtaScratch = 33;  // values of shared scratch a reduction needs: one per warp, the total

// op over x of every thread of the CTA (blockDim.x <= 1024); every thread must call it.
template <typename T, typename Op>
__device__ T cta_reduce(T x, T* scratch, Op op) {
  for (int offset = 16; offset > 0; offset /= 2) x = op(x, __shfl_down_sync(0xffffffffu, x, offset));
  __syncthreads();  // the previous reduction has read its total
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = x;
  __syncthreads();
  if (threadIdx.x == 0) {
    T total = scratch[0];
    for (int w = 1; w < static_cast<int>((blockDim.x + 31) / 32); ++w) total = op(total, scratch[w]);
    scratch[kCtaScratch - 1] = total;
  }
  __syncthreads();
  return scratch[kCtaScratch - 1];
}

template <typename T>
__device__ T cta_sum(T x, T* scratch) {
  return cta_reduce(x, scratch, [](T a, T b) { return a + b; });
}

__device__ inline double cta_max(double x, double* scratch) {
  return cta_reduce(x, scratch, [](double a, double b) { return fmax(a, b); });
}

}  // namespace sparsefill::cuda::select
