// Reductions over a whole CTA in a fixed order, so that a sum is the same on every run: each warp reduces by
// shuffles, thread 0 combines the warps' results in warp order, and every thread receives the total; an
// exclusive prefix sum in thread order; and a radix select's search of its histogram from the top. Plain
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

// The exclusive prefix sum of `value` over the CTA's threads in thread order; `total` gets the sum over all
// of them. Every thread calls it; `warp_totals` is shared scratch of one int per warp.
__device__ inline int cta_exclusive_sum(int value, int* warp_totals, int& total) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = static_cast<int>(blockDim.x) / 32;
  int through = value;  // inclusive over the warp's lanes
  for (int offset = 1; offset < 32; offset *= 2) {
    const int other = __shfl_up_sync(0xffffffffu, through, offset);
    if (lane >= offset) through += other;
  }
  if (lane == 31) warp_totals[warp] = through;
  __syncthreads();
  if (warp == 0) {  // the warps' totals, inclusive over the warps
    int sum = lane < warps ? warp_totals[lane] : 0;
    for (int offset = 1; offset < 32; offset *= 2) {
      const int other = __shfl_up_sync(0xffffffffu, sum, offset);
      if (lane >= offset) sum += other;
    }
    __syncwarp();
    if (lane < warps) warp_totals[lane] = sum;
  }
  __syncthreads();
  const int before = (warp > 0 ? warp_totals[warp - 1] : 0) + through - value;
  total = warp_totals[warps - 1];
  __syncthreads();  // the scratch is free for the next call
  return before;
}

// One warp's search of a radix select's 256-bin histogram from the top bin down: the first bin where the
// running total from the top, starting at `base`, plus the bin's own count satisfies `crosses`. Returns that
// bin (-1 where none does) and sets `before` to the running total ahead of it, in every lane. Lane l holds
// bins 255 - 8 l - j (j < 8); warp 0 calls it after the histogram is complete.
template <typename T, typename Crosses>
__device__ int first_crossing_from_top(const T* bins, T base, Crosses crosses, T& before) {
  const int lane = threadIdx.x % 32;
  T count[8], lane_total = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) lane_total += count[j] = bins[255 - 8 * lane - j];
  T through = lane_total;  // inclusive over the lanes
  for (int offset = 1; offset < 32; offset *= 2) {
    const T other = __shfl_up_sync(0xffffffffu, through, offset);
    if (lane >= offset) through += other;
  }
  int bin = -1;
  T running = base + through - lane_total;
  before = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    if (bin < 0 && crosses(running + count[j])) bin = 255 - 8 * lane - j, before = running;
    running += count[j];
  }
  const unsigned crossed = __ballot_sync(0xffffffffu, bin >= 0);
  const int source = crossed != 0 ? __ffs(static_cast<int>(crossed)) - 1 : 0;
  before = __shfl_sync(0xffffffffu, before, source);
  return __shfl_sync(0xffffffffu, bin, source);
}

}  // namespace sparsefill::cuda::select
