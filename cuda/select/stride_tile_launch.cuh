// The tiled stride kernel's launch (stride_tile_kernel.cuh). Each (dtype, pass count) is instantiated in its
// own file, stride_tile_{bf16,fp16}{,_one_pass}.cu, so that the nine kernels of each build in parallel;
// stride_selection.cu calls them through the extern declarations at the end.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "common/cuda_check.hpp"
#include "select/stride_rules.cuh"
#include "select/stride_tile_kernel.cuh"

namespace sparsefill::cuda::select {

// Launches the tiled kernel of `params` (RRAttention or XAttention by params.base.rr, the rule's items by
// params.base.nk) over `grid`, with the shared memory and column chunks a stage of `plan`.
template <typename Element, bool kOnePass>
void launch_stride_tile(const StrideTileParams<Element>& params, const StrideTilePlan& plan, dim3 grid,
                        cudaStream_t stream) {
  const StrideParams& p = params.base;
  with_rule_items(p.nk, [&](auto items) {
    constexpr int kItems = decltype(items)::value;
    const auto kernel = !p.rr             ? stride_tile_kernel<Element, kItems, false, 1, kOnePass>
                        : plan.parts == 2 ? stride_tile_kernel<Element, kItems, true, 2, kOnePass>
                                          : stride_tile_kernel<Element, kItems, true, 1, kOnePass>;
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(plan.smem_bytes)),
               "stride selection shared memory opt-in");
    const int threads = kTileThreads + (p.rr ? kProducerThreads : 0);
    kernel<<<grid, threads, plan.smem_bytes, stream>>>(params);
  });
}

extern template void launch_stride_tile<__nv_bfloat16, false>(const StrideTileParams<__nv_bfloat16>&,
                                                              const StrideTilePlan&, dim3, cudaStream_t);
extern template void launch_stride_tile<__nv_bfloat16, true>(const StrideTileParams<__nv_bfloat16>&,
                                                             const StrideTilePlan&, dim3, cudaStream_t);
extern template void launch_stride_tile<__half, false>(const StrideTileParams<__half>&, const StrideTilePlan&,
                                                       dim3, cudaStream_t);
extern template void launch_stride_tile<__half, true>(const StrideTileParams<__half>&, const StrideTilePlan&,
                                                      dim3, cudaStream_t);

}  // namespace sparsefill::cuda::select
