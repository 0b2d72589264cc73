// Host form of cuda/select/fp64_mma.cuh for the device emulator: the warp's 32 lanes meet with their A and B
// elements and each lane computes its two D elements with fused multiply-adds in k order (the fragment layout
// of CuTe's SM80_8x8x4_F64F64F64F64_TN traits: A and B lane l = 4 m + k, D row l / 4, columns 2 (l % 4) + i).
#pragma once
#include <cmath>

#include "support/device_emulator.hpp"

namespace sparsefill::cuda::select {

inline void mma_m8n8k4(double (&d)[2], double a, double b) {
  namespace emulated = testing::emulated;
  double as[32], bs[32];
  const std::uint64_t* a_bits = emulated::meet_warp(emulated::bits_of(a), 0xffffffffu);
  for (int l = 0; l < 32; ++l) as[l] = emulated::value_of<double>(a_bits[l]);
  const std::uint64_t* b_bits = emulated::meet_warp(emulated::bits_of(b), 0xffffffffu);
  for (int l = 0; l < 32; ++l) bs[l] = emulated::value_of<double>(b_bits[l]);
  const int lane = emulated::lane(), row = lane / 4;
  for (int i = 0; i < 2; ++i) {
    const int column = 2 * (lane % 4) + i;
    for (int k = 0; k < 4; ++k) d[i] = std::fma(as[row * 4 + k], bs[column * 4 + k], d[i]);
  }
}

}  // namespace sparsefill::cuda::select
