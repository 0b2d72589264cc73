// The fp64 tensor-core product of the row kernel: D (8x8) += A (8x4, row-major) * B (4x8, column-major), one
// warp (mma.sync m8n8k4 through CuTe's SM80 atom). Lane l holds A[l / 4][l % 4], B[l % 4][l / 4] (B's column
// l / 4) and D[l / 4][2 (l % 4) + i], i < 2. tests/emulated/select/fp64_mma.cuh is its host form.
#pragma once
#include <cute/arch/mma_sm80.hpp>

namespace sparsefill::cuda::select {

__device__ inline void mma_m8n8k4(double (&d)[2], double a, double b) {
  cute::SM80_8x8x4_F64F64F64F64_TN::fma(d[0], d[1], a, b, d[0], d[1]);
}

}  // namespace sparsefill::cuda::select
