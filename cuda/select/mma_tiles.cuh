// Tensor-core helpers of the selection kernels that multiply bf16/fp16 rows: the element types' tensor-core
// forms, 16-byte loads and cp.async staging, the running softmax statistics and lane reductions shared by the
// stride selectors (mma.sync in the per-warp kernel, wgmma in the tiled one) and PBS's proxy (wgmma).
//
// The stride selectors' operands use a permuted reduction order that both sides share: lane t of a k-step
// pair takes 8 consecutive dims (one 16-byte load, a RowFragment's half) and feeds them to the mma's k slots
// {2t, 2t+1, 2t+8, 2t+9} of two k-steps.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cute/arch/mma_sm80.hpp>
#include <cutlass/numeric_types.h>

namespace sparsefill::cuda::select {

// The tensor-core forms of an input element type: the mma.sync operation and CUTLASS's type (wgmma kernels).
template <typename Element>
struct MmaOf;
template <>
struct MmaOf<__nv_bfloat16> {
  using Op = cute::SM80_16x8x16_F32BF16BF16F32_TN;
  using CuteElement = cutlass::bfloat16_t;
};
template <>
struct MmaOf<__half> {
  using Op = cute::SM80_16x8x16_F32F16F16F32_TN;
  using CuteElement = cutlass::half_t;
};

// One 16-byte load of 8 consecutive elements, or zeros.
__device__ inline uint4 load8(const void* base, std::int64_t element_offset, bool present) {
  if (!present) return make_uint4(0u, 0u, 0u, 0u);
  return __ldg(reinterpret_cast<const uint4*>(static_cast<const unsigned short*>(base) + element_offset));
}

// A row tile's query operand for one 32-dim step: rows r0 + g and r0 + g + 8 of lane g = lane / 4.
struct RowFragment {
  uint4 lo, hi;
};

__device__ inline void async_copy16_shared(unsigned smem_address, const void* global, bool present) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address), "l"(global),
               "r"(present ? 16 : 0));
}
__device__ inline void async_copy16(void* smem, const void* global, bool present) {
  async_copy16_shared(static_cast<unsigned>(__cvta_generic_to_shared(smem)), global, present);
}
__device__ inline void async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>
__device__ inline void async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// 2^x on the special-function unit with results below fp32's normal range flushed to zero: exp2f spends three
// more instructions a call rescaling those, and the selectors' probabilities, relative to a row maximum of 2^0,
// lose nothing that an fp32 sum would keep.
__device__ inline float exp2_flushed(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Running softmax statistics (base-2 maximum m, exp-sum z) of a lane's rows of mma tiles (g and g + 8 of
// each): a tile's maxima raise them, rescaling the sums.
template <int kRows>
__device__ inline void raise_row_maxima(float (&m)[kRows], float (&z)[kRows], const float (&tile_max)[kRows]) {
#pragma unroll
  for (int i = 0; i < kRows; ++i) {
    const float next = fmaxf(m[i], tile_max[i]);
    z[i] = next == -INFINITY ? 0.f : z[i] * exp2f(m[i] - next);
    m[i] = next;
  }
}

// Adds the statistics (om, oz) of other columns of a row to the row's (m, z).
__device__ inline void combine_row_stats(float& m, float& z, float om, float oz) {
  const float next = fmaxf(m, om);
  z = next == -INFINITY ? 0.f : z * exp2f(m - next) + oz * exp2f(om - next);
  m = next;
}

// Merges the statistics of one row over the 4 lanes that hold its columns (every lane ends with the row's).
__device__ inline void merge_row_over_quad(float& m, float& z) {
  for (int offset = 1; offset < 4; offset *= 2)
    combine_row_stats(m, z, __shfl_xor_sync(0xffffffffu, m, offset), __shfl_xor_sync(0xffffffffu, z, offset));
}

// Zeroes a block of mma accumulators.
template <int kA, int kB, int kC>
__device__ inline void zero_accumulators(float (&x)[kA][kB][kC]) {
#pragma unroll
  for (int a = 0; a < kA; ++a)
#pragma unroll
    for (int b = 0; b < kB; ++b)
#pragma unroll
      for (int c = 0; c < kC; ++c) x[a][b][c] = 0.f;
}

// One exchange of a reduce-scatter over a warp's lanes: lanes whose `kOffset` bit is set keep the upper kHalf
// entries of v[0, 2 kHalf), the others the lower, each adding its partner's copy into v[0, kHalf).
template <int kHalf, int kOffset, int kCount>
__device__ inline void exchange_halves(float (&v)[kCount], int lane) {
  static_assert(2 * kHalf <= kCount, "the exchanged entries must exist");
  const bool upper = (lane & kOffset) != 0;
#pragma unroll
  for (int i = 0; i < kHalf; ++i) {
    const float send = upper ? v[i] : v[i + kHalf];
    const float keep = upper ? v[i + kHalf] : v[i];
    v[i] = keep + __shfl_xor_sync(0xffffffffu, send, kOffset);
  }
}

// Sums v over the 8 lanes of a column (lanes of equal lane % 4) and scatters the result: a lane keeps entries
// [kCount / 8 * g, kCount / 8 * (g + 1)) (g = lane / 4) of the summed v in v[0, kCount / 8).
template <int kCount>
__device__ inline void reduce_scatter_over_rows(float (&v)[kCount], int lane) {
  exchange_halves<kCount / 2, 16>(v, lane);
  exchange_halves<kCount / 4, 8>(v, lane);
  exchange_halves<kCount / 8, 4>(v, lane);
}

// The top of step c of `count` in a two-stage cp.async pipeline: issue step c + 1 (if any), wait for step c's
// copies, and sync the CTA.
template <typename Issue>
__device__ inline void next_stage(int c, int count, Issue&& issue) {
  if (c + 1 < count) {
    issue(c + 1);
    async_wait<1>();
  } else {
    async_wait<0>();
  }
  __syncthreads();
}

}  // namespace sparsefill::cuda::select
