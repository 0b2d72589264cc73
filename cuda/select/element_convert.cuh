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

}  // namespace sparsefill::cuda::select
