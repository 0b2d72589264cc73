// The pooled pipeline's launch (pooled_pipeline.cuh). Each dtype is instantiated in its own file,
// pooled_pipeline_{bf16,fp16}.cu, so that their six kernels each build in parallel; gpu_selection.cu calls
// them through the extern declarations at the end.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "common/cuda_check.hpp"
#include "select/pooled_pipeline.cuh"

namespace sparsefill::cuda::select {

// Completes p's layout (plan_pipeline), zeroes its control words and launches the pipeline.
template <typename Element, int kItems>
void launch_pooled_pipeline_items(PipelineParams& p, cudaStream_t stream) {
  const int vector = std::min(pool_vector_width(p.pooling.job[0], p.scoring.d, sizeof(Element)),
                              pool_vector_width(p.pooling.job[1], p.scoring.d, sizeof(Element)));
  plan_pipeline<kItems>(p, vector);
  check_cuda(cudaMemsetAsync(p.control, 0, sizeof(unsigned) * pipeline_control_words(p.plan.stages), stream),
             "pipeline control words");
  const auto kernel =
      vector == 8 ? pooled_pipeline_kernel<Element, kItems, 8> : pooled_pipeline_kernel<Element, kItems, 1>;
  const std::size_t smem = score_rows_smem_bytes(p.scoring.d, kItems);
  check_cuda(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
      "pipeline shared memory opt-in");
  kernel<<<static_cast<unsigned>(pipeline_tickets(p.plan)), score_rows_per_cta(kItems) * 32, smem, stream>>>(
      p);
}

// launch_pooled_pipeline_items at the smallest lane capacity that holds every key block (registers follow
// it).
template <typename Element>
void launch_pooled_pipeline(PipelineParams& p, cudaStream_t stream) {
  if (p.scoring.nk <= 8 * 32) {
    launch_pooled_pipeline_items<Element, 8>(p, stream);
  } else if (p.scoring.nk <= 32 * 32) {
    launch_pooled_pipeline_items<Element, 32>(p, stream);
  } else {
    launch_pooled_pipeline_items<Element, 64>(p, stream);
  }
}

extern template void launch_pooled_pipeline<__nv_bfloat16>(PipelineParams&, cudaStream_t);
extern template void launch_pooled_pipeline<__half>(PipelineParams&, cudaStream_t);

}  // namespace sparsefill::cuda::select
