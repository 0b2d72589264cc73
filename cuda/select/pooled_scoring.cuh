// Kernels of the pooled-score selectors on the GPU (Prism and mean pooling; design note).
//
// Every step mirrors the CPU reference (src/select/prism_selector.cpp, meanpool_selector.cpp) in fp64 and in
// the same summation order where the order is per element: block pooling sums a block's tokens in token
// order and divides by the block; a logit sums its band's dims in the reference's dim order. Reductions over
// many elements (the bands' RMS statistics, the softmax normaliser, the prefix mass of the top-p rule) run
// in another order, so a decision can differ from the CPU's only where a value sits within rounding of the
// threshold (exact ties are broken by block index, as the CPU does).
//
// This file calibrates the bands; pool_blocks.cuh pools Q and K per block, select/score_rows.cuh scores the mask
// rows.
#pragma once
#include <cstdint>

#include "select/cta_reduce.cuh"
#include "select/pool_blocks.cuh"
#include "select/score_rows.cuh"
#include "select/sequence_lengths.cuh"

namespace sparsefill::cuda::select {

inline constexpr double kRmsFloor = 1e-6;

inline constexpr int kEnergySlices = 64;  // CTAs per head of the energy sums (partials reduced in order)
inline constexpr int kEnergyThreads = 256;

// Partial sums of squares of pooled blocks per (b, h) and slice of its sequence's blocks: [0] over every dim,
// [1 + z] over band z's dims, into partial[(bh * kEnergySlices + slice) * 3 + i]. Element (u, c) of a head sits
// at u * u_stride + c * c_stride in a layout of nb_max blocks; threads walk the slice's elements in memory order
// (u-major for u_stride > c_stride) and add each square to the sums of the bands its dim belongs to, one pass.
__global__ void pooled_energy_kernel(const double* pooled, int nb_max, Lengths lengths, bool keys, int heads, int d,
                                     int u_stride, int c_stride, Band high, Band low, double* partial) {
  const int bh = blockIdx.x, slice = blockIdx.y, b = bh / heads;
  const int nb = keys ? lengths.k_blocks(b) : lengths.q_blocks(b);
  const double* rows = pooled + static_cast<std::int64_t>(bh) * nb_max * d;
  const int u_begin = static_cast<int>(static_cast<long long>(nb) * slice / kEnergySlices);
  const int n = static_cast<int>(static_cast<long long>(nb) * (slice + 1) / kEnergySlices) - u_begin;
  __shared__ unsigned char bands_of[kMaxBandDims];  // bit z: the dim is in band z
  for (int c = threadIdx.x; c < d; c += blockDim.x) bands_of[c] = 0;
  __syncthreads();
  for (int i = threadIdx.x; i < high.count; i += blockDim.x) bands_of[high.dims[i]] |= 1;
  __syncthreads();
  for (int i = threadIdx.x; i < low.count; i += blockDim.x) bands_of[low.dims[i]] |= 2;
  __syncthreads();
  const bool u_major = u_stride > c_stride;
  double all = 0, band0 = 0, band1 = 0;
  for (int i = threadIdx.x; i < n * d; i += blockDim.x) {
    const int u = u_begin + (u_major ? i / d : i % n), c = u_major ? i % d : i / n;
    const double x = rows[u * u_stride + c * c_stride], square = x * x;
    all += square;
    band0 += bands_of[c] & 1 ? square : 0.0;
    band1 += bands_of[c] & 2 ? square : 0.0;
  }
  __shared__ double scratch[kCtaScratch];
  all = cta_sum(all, scratch);
  band0 = cta_sum(band0, scratch);
  band1 = cta_sum(band1, scratch);
  if (threadIdx.x == 0) {
    double* out = partial + (static_cast<std::int64_t>(bh) * kEnergySlices + slice) * 3;
    out[0] = all;
    out[1] = band0;
    out[2] = band1;
  }
}

// Sum i of a head's energy partials, in slice order over a warp (the same in every lane).
__device__ inline double energy_sum(const double* partial, int bh, int i) {
  double local = 0;
  for (int slice = threadIdx.x % 32; slice < kEnergySlices; slice += 32) local += partial[(bh * kEnergySlices + slice) * 3 + i];
  return warp_sum(local);
}

// Prism's band multipliers 1 / (sqrt(d_z) * max(tau_z, 1e-6)), tau_z = sqrt(d_z / d) * rms(Q_z)/rms(Q) *
// rms(K_z)/rms(K) (1 without calibration); mean pooling: one band, 1 / sqrt(d).
// One warp per (b, h): grid batch * heads_q, 32 threads.
__global__ void band_scale_kernel(const double* energy_q, const double* energy_k, int batch, int heads_q,
                                  int heads_kv, Lengths lengths, int d, int bands, int calibrate, Band high, Band low,
                                  double* scales) {
  const int i = blockIdx.x;
  const int b = i / heads_q, h = i % heads_q, hk = h / (heads_q / heads_kv);
  const int nq = lengths.q_blocks(b), nk = lengths.k_blocks(b);
  const int bk = b * heads_kv + hk;
  for (int z = 0; z < bands; ++z) {
    const double dz = z == 0 ? high.count : low.count;
    double tau = 1.0;
    if (calibrate) {
      const double rq = sqrt(energy_sum(energy_q, i, 1 + z) / (static_cast<double>(nq) * dz)),
                   rq_all = sqrt(energy_sum(energy_q, i, 0) / (static_cast<double>(nq) * d));
      const double rk = sqrt(energy_sum(energy_k, bk, 1 + z) / (static_cast<double>(nk) * dz)),
                   rk_all = sqrt(energy_sum(energy_k, bk, 0) / (static_cast<double>(nk) * d));
      tau = sqrt(dz / d) * (rq / fmax(rq_all, kRmsFloor)) * (rk / fmax(rk_all, kRmsFloor));
    }
    if (threadIdx.x == 0) scales[i * bands + z] = 1.0 / (sqrt(dz) * fmax(tau, kRmsFloor));
  }
}

}  // namespace sparsefill::cuda::select
