// The fp32-accumulating tensor-core product of the last-rows logits (last_rows.cuh: MInference's and
// FlexPrefill's estimates): D (16x8, fp32) += A (16x16, row-major) * B (16x8, column-major) of bf16/fp16
// operands, one warp (mma.sync m16n8k16 through CuTe's SM80 atoms, MmaOf in mma_tiles.cuh). With g = l / 4
// and t = l % 4, lane l holds A's pairs (row g, k 2t), (row g + 8, k 2t), (row g, k 2t + 8), (row g + 8,
// k 2t + 8), B's pairs (k 2t, column g), (k 2t + 8, column g), and D[g][2t + i] (`top`), D[g + 8][2t + i]
// (`bottom`), i < 2. A pair is two consecutive k elements packed as one operand register.
// tests/emulated/select/f32_mma.cuh is its host form (fp32 elements).
#pragma once
#include "select/mma_tiles.cuh"

namespace sparsefill::cuda::select {

// Elements c and c + 1 (c even) of a staged row of d elements, zero past d, as one operand register: one
// 32-bit load when d is even (the staged rows then start at even elements), else two 16-bit ones.
template <typename Element>
__device__ inline unsigned load_pair(const Element* row, int c, int d) {
  if (d % 2 == 0) return c < d ? *reinterpret_cast<const unsigned*>(row + c) : 0u;
  const auto* bits = reinterpret_cast<const unsigned short*>(row);
  const unsigned lo = c < d ? bits[c] : 0u, hi = c + 1 < d ? bits[c + 1] : 0u;
  return lo | hi << 16;
}

template <typename Element>
__device__ inline void mma_16x8x16(float (&top)[2], float (&bottom)[2], const unsigned (&a)[4],
                                   const unsigned (&b)[2]) {
  MmaOf<Element>::Op::fma(top[0], top[1], bottom[0], bottom[1], a[0], a[1], a[2], a[3], b[0], b[1], top[0],
                          top[1], bottom[0], bottom[1]);
}

}  // namespace sparsefill::cuda::select
