// Host form of cuda/select/f32_mma.cuh for the device emulator, whose kernels read fp32 elements: a pair is
// two floats (zero past d), and each D element adds the 16 products of its row and column, summed in fp64
// and rounded once to fp32 (the tensor core's own order and rounding are not specified; the emulated tests'
// inputs have few mantissa bits, so that every such sum is exact). The fragment layout is the device's.
#pragma once
#include "support/device_emulator.hpp"

namespace sparsefill::cuda::select {

struct FloatPair {
  float lo, hi;
};

template <typename Element>
inline FloatPair load_pair(const Element* row, int c, int d) {
  return {c < d ? row[c] : 0.0f, c + 1 < d ? row[c + 1] : 0.0f};
}

template <typename Element>
inline void mma_16x8x16(float (&top)[2], float (&bottom)[2], const FloatPair (&a)[4],
                        const FloatPair (&b)[2]) {
  namespace emulated = testing::emulated;
  FloatPair as[32][4], bs[32][2];  // by lane
  for (int i = 0; i < 4; ++i) {
    const std::uint64_t* met = emulated::meet_warp(emulated::bits_of(a[i]), 0xffffffffu);
    for (int l = 0; l < 32; ++l) as[l][i] = emulated::value_of<FloatPair>(met[l]);
  }
  for (int i = 0; i < 2; ++i) {
    const std::uint64_t* met = emulated::meet_warp(emulated::bits_of(b[i]), 0xffffffffu);
    for (int l = 0; l < 32; ++l) bs[l][i] = emulated::value_of<FloatPair>(met[l]);
  }
  auto element = [](const FloatPair& p, int k) { return static_cast<double>(k % 2 == 0 ? p.lo : p.hi); };
  auto a_at = [&](int row, int k) {
    return element(as[4 * (row % 8) + k % 8 / 2][row / 8 + 2 * (k / 8)], k);
  };
  auto b_at = [&](int k, int column) { return element(bs[4 * column + k % 8 / 2][k / 8], k); };
  const int lane = emulated::lane(), g = lane / 4;
  for (int i = 0; i < 2; ++i) {
    const int column = 2 * (lane % 4) + i;
    double sum_top = 0, sum_bottom = 0;
    for (int k = 0; k < 16; ++k) {
      sum_top += a_at(g, k) * b_at(k, column);
      sum_bottom += a_at(g + 8, k) * b_at(k, column);
    }
    top[i] = static_cast<float>(static_cast<double>(top[i]) + sum_top);
    bottom[i] = static_cast<float>(static_cast<double>(bottom[i]) + sum_bottom);
  }
}

}  // namespace sparsefill::cuda::select
