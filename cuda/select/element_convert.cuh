// Conversions between the selectors' input dtypes (bf16, fp16) and fp32, on the device, and the staging of 8
// elements through shared memory by cp.async. tests/emulated/select/element_convert.cuh is its host form
// (fp32 inputs).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cute/arch/copy_sm80.hpp>

namespace sparsefill::cuda::select {

__device__ inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ inline float to_float(__half x) { return __half2float(x); }
template <typename Element>
__device__ Element from_float(float x);
template <>
__device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <>
__device__ inline __half from_float<__half>(float x) { return __float2half_rn(x); }

// kVector consecutive elements at x as fp32: one 16-byte load for 8 two-byte elements (x 16-byte aligned),
// else one load each.
template <int kVector, typename Element>
__device__ inline void load_vector(const Element* x, float (&out)[kVector]) {
  if constexpr (kVector == 8 && sizeof(Element) == 2) {
    const uint4 raw = __ldg(reinterpret_cast<const uint4*>(x));
    const Element* e = reinterpret_cast<const Element*>(&raw);
#pragma unroll
    for (int i = 0; i < 8; ++i) out[i] = to_float(e[i]);
  } else {
#pragma unroll
    for (int i = 0; i < kVector; ++i) out[i] = to_float(x[i]);
  }
}

// A shared-memory slot of 8 two-byte elements (16 bytes) staged by cp.async: stage_vector issues the copy of
// the 8 elements at x (16-byte aligned), stage_commit closes a group of copies, stage_wait<n> waits until at
// most n groups are in flight (this thread's earlier ones landed), staged_vector reads a landed slot as fp32.
template <typename Element>
struct StagedVector {
  uint4 raw;
};
template <typename Element>
__device__ inline void stage_vector(StagedVector<Element>* slot, const Element* x) {
  cute::SM80_CP_ASYNC_CACHEGLOBAL<uint4>::copy(*reinterpret_cast<const uint4*>(x), slot->raw);
}
__device__ inline void stage_commit() {
  cute::cp_async_fence();
}
template <int kPending>
__device__ inline void stage_wait() {
  cute::cp_async_wait<kPending>();
}
template <typename Element>
__device__ inline void staged_vector(const StagedVector<Element>& slot, float (&out)[8]) {
  const uint4 raw = slot.raw;  // one 16-byte shared load
  const Element* e = reinterpret_cast<const Element*>(&raw);
#pragma unroll
  for (int i = 0; i < 8; ++i) out[i] = to_float(e[i]);
}

}  // namespace sparsefill::cuda::select
