// Host side of the Hopper kernel: builds the TMA descriptors from the flat parameters and launches one CTA per
// scheduled item. The descriptors travel in the kernel's __grid_constant__ parameters, so a captured CUDA
// graph replays them without host work. Requires 16-byte aligned q/k/v rows (the launcher's dispatch checks).
#pragma once
#include <cuda_runtime.h>

#include "attention/attention_params.hpp"
#include "attention/wgmma/wgmma_entry.hpp"
#include "attention/wgmma/wgmma_kernel.cuh"

namespace sparsefill::cuda::wgmma {

template <class Traits>
KernelParams<Traits> make_kernel_params(const AttentionKernelParams& p, const TmaExtents& e) {
  using namespace cute;
  using T = Traits;
  using E = typename T::Element;
  // A size-1 batch mode (varlen) still needs a legal TMA stride: any multiple of 16 bytes does.
  auto batch_stride = [&](std::int64_t stride, std::int64_t token, int tokens) {
    return e.batch == 1 && stride == 0 ? token * tokens : stride;
  };
  const auto q = make_tensor(
      make_gmem_ptr(static_cast<const E*>(p.q)),
      make_layout(make_shape(e.q_tokens, T::kHeadDim, p.heads_q, e.batch),
                  make_stride(p.q_token, _1{}, p.q_head, batch_stride(p.q_batch, p.q_token, e.q_tokens))));
  const auto k = make_tensor(
      make_gmem_ptr(static_cast<const E*>(p.k)),
      make_layout(make_shape(e.k_tokens, T::kHeadDim, p.heads_kv, e.batch),
                  make_stride(p.k_token, _1{}, p.k_head, batch_stride(p.k_batch, p.k_token, e.k_tokens))));
  const auto vt = make_tensor(
      make_gmem_ptr(static_cast<const E*>(p.v)),
      make_layout(make_shape(T::kHeadDim, e.k_tokens, p.heads_kv, e.batch),
                  make_stride(_1{}, p.v_token, p.v_head, batch_stride(p.v_batch, p.v_token, e.k_tokens))));
  KernelParams<Traits> params{p,
                              make_tma_copy(SM90_TMA_LOAD{}, q, typename T::SmemLayoutQ{}),
                              make_tma_copy(SM90_TMA_LOAD{}, k, take<0, 2>(typename T::SmemLayoutK{})),
                              make_tma_copy(SM90_TMA_LOAD{}, vt, take<0, 2>(typename T::SmemLayoutV{})),
                              e.q_tokens,
                              e.k_tokens,
                              e.batch};
  return params;
}

template <class Traits>
cudaError_t launch_traits(const AttentionKernelParams& p, const TmaExtents& e, int items, cudaStream_t stream) {
  constexpr int kSmem = sizeof(typename Traits::SharedStorage);
  const cudaError_t status = cudaFuncSetAttribute(block_sparse_attention_kernel<Traits>,
                                                  cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (status != cudaSuccess) return status;
  block_sparse_attention_kernel<Traits><<<items, Traits::kThreads, kSmem, stream>>>(make_kernel_params<Traits>(p, e));
  return cudaGetLastError();
}

template <class Element>
cudaError_t launch(int head_dim, const AttentionKernelParams& p, const TmaExtents& e, int items,
                   cudaStream_t stream) {
  return head_dim == 64 ? launch_traits<AttentionTraits<Element, 64>>(p, e, items, stream)
                        : launch_traits<AttentionTraits<Element, 128>>(p, e, items, stream);
}

}  // namespace sparsefill::cuda::wgmma
