// Kernels of the pooled-score selectors on the GPU (Prism and mean pooling; design note).
//
// Every step mirrors the CPU reference (src/select/prism_selector.cpp, meanpool_selector.cpp) in fp64 and in
// the same summation order where the order is per element, with two exceptions at fp32's precision: block
// pooling sums a block's tokens in fp32 runs of 16 (token order) added in fp64 (sum_tokens_fp32), and the
// softmax numerators of the mass rules are exponentials at fp32's precision (score_rows.cuh's row_exp); a
// logit sums its band's dims in the reference's dim order. Reductions over many elements (the bands' RMS
// statistics, the softmax normaliser, the prefix mass of the top-p rule) run in another order, so a decision
// can differ from the CPU's only where a mass sits within a few 1e-6, relative, of the threshold, or where
// two blocks' scores agree to that rounding and the cut falls between them (exact ties are broken by block
// index, as the CPU does).
//
// This file calibrates the bands; pool_blocks.cuh pools Q and K per block (and takes the bands' energies),
// select/score_rows.cuh scores the mask rows, pooled_pipeline.cuh runs the three in one launch.
#pragma once
#include <cstdint>

#include "select/pool_blocks.cuh"
#include "select/score_rows.cuh"
#include "select/sequence_lengths.cuh"

namespace sparsefill::cuda::select {

inline constexpr double kRmsFloor = 1e-6;

// The dim set of a band as pool_blocks_kernel's energies take it (PoolParams::band_bits).
inline void set_band_bits(const Band& band, unsigned long long (&bits)[kPoolBandWords]) {
  static_assert(kPoolBandWords * 64 >= kMaxBandDims, "a band's dims fit the words");
  for (unsigned long long& word : bits) word = 0;
  for (int i = 0; i < band.count; ++i) bits[band.dims[i] / 64] |= 1ull << (band.dims[i] % 64);
}

// Prism's band multipliers 1 / (sqrt(d_z) * max(tau_z, 1e-6)), tau_z = sqrt(d_z / d) * rms(Q_z)/rms(Q) *
// rms(K_z)/rms(K) (1 without calibration); mean pooling: one band, 1 / sqrt(d); of query head `h` of
// sequence `b`, into scales[(b * heads_q + h) * bands + z]. energy_q [batch, heads_q, nq_max, 3] and
// energy_k [batch, heads_kv, nk_max, 3]: pool_units' per-block energies, written by other CTAs of the
// launch (read through L2), summed over the sequence's blocks in a fixed order (each lane a strided share,
// then warp_sum). One warp calls it; lane 0 writes the scales.
__device__ inline void band_scales(const double* energy_q, const double* energy_k, int nq_max, int nk_max,
                                   int heads_q, int heads_kv, const Lengths& lengths, int d, int bands,
                                   int calibrate, int high_dims, int low_dims, int b, int h, double* scales) {
  const int i = b * heads_q + h, hk = h / (heads_q / heads_kv), lane = threadIdx.x % 32;
  const int nq = lengths.q_blocks(b), nk = lengths.k_blocks(b);
  double e[6] = {};  // the queries' energy over every dim, band 0, band 1; the keys' the same
  if (calibrate) {
    const double* eq = energy_q + static_cast<std::int64_t>(i) * nq_max * 3;
    const double* ek = energy_k + (static_cast<std::int64_t>(b) * heads_kv + hk) * nk_max * 3;
    for (int u = lane; u < nq; u += 32)
#pragma unroll
      for (int j = 0; j < 3; ++j) e[j] += __ldcg(eq + u * 3 + j);
    for (int u = lane; u < nk; u += 32)
#pragma unroll
      for (int j = 0; j < 3; ++j) e[3 + j] += __ldcg(ek + u * 3 + j);
#pragma unroll
    for (int j = 0; j < 6; ++j) e[j] = warp_sum(e[j]);
  }
  if (lane != 0) return;
  for (int z = 0; z < bands; ++z) {
    const double dz = z == 0 ? high_dims : low_dims;
    double tau = 1.0;
    if (calibrate) {
      const double rq = sqrt(e[1 + z] / (static_cast<double>(nq) * dz)),
                   rq_all = sqrt(e[0] / (static_cast<double>(nq) * d));
      const double rk = sqrt(e[4 + z] / (static_cast<double>(nk) * dz)),
                   rk_all = sqrt(e[3] / (static_cast<double>(nk) * d));
      tau = sqrt(dz / d) * (rq / fmax(rq_all, kRmsFloor)) * (rk / fmax(rk_all, kRmsFloor));
    }
    scales[i * bands + z] = 1.0 / (sqrt(dz) * fmax(tau, kRmsFloor));
  }
}

}  // namespace sparsefill::cuda::select
