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

// kVector consecutive elements held as loaded, converted to fp32 when used, so that a thread keeps many
// loads in flight in few registers: 8 two-byte elements as the four 32-bit words of one 16-byte load, marked
// streaming (evict first), so that the pipeline's pooling of Q and K does not push the pooled blocks, which
// the row items read many times, out of L2.
template <typename Element, int kVector>
struct RawVector {
  Element e[kVector];
};
template <typename Element>
struct RawVector<Element, 8> {
  static_assert(sizeof(Element) == 2, "8 two-byte elements");
  uint4 words;
};
template <int kVector, typename Element>
__device__ inline RawVector<Element, kVector> load_raw(const Element* x) {
  if constexpr (kVector == 8) {
    return {__ldcs(reinterpret_cast<const uint4*>(x))};
  } else {
    RawVector<Element, kVector> r;
#pragma unroll
    for (int i = 0; i < kVector; ++i) r.e[i] = x[i];
    return r;
  }
}
// The two elements of a 32-bit word as fp32 (bf16: a shift and a mask; fp16: one paired conversion).
__device__ inline float2 word_to_float2(unsigned word, __nv_bfloat16) {
  return {__uint_as_float(word << 16), __uint_as_float(word & 0xffff0000u)};
}
__device__ inline float2 word_to_float2(unsigned word, __half) {
  __half2 pair;
  memcpy(&pair, &word, sizeof(pair));
  return __half22float2(pair);
}
template <typename Element, int kVector>
__device__ inline void raw_to_float(const RawVector<Element, kVector>& r, float (&out)[kVector]) {
  if constexpr (kVector == 8) {
    const unsigned words[4] = {r.words.x, r.words.y, r.words.z, r.words.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = word_to_float2(words[i], Element{});
      out[2 * i] = f.x;
      out[2 * i + 1] = f.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < kVector; ++i) out[i] = to_float(r.e[i]);
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
