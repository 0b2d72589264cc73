// Conversions between the selectors' input dtypes (bf16, fp16) and fp32, on the device.
// tests/emulated/select/element_convert.cuh is its host form (fp32 inputs).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

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

}  // namespace sparsefill::cuda::select
