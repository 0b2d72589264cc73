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

// A sequence's stages: its query heads in chunks of score_rows_chunk (PipelineParams::chunks).
inline int pipeline_chunks(int heads_q, int heads_kv) {
  const int chunk = score_rows_chunk(heads_q, heads_kv);
  return (heads_q + chunk - 1) / chunk;
}

// The control words of a pipeline over `stages` stages (PipelineParams::control).
inline int pipeline_control_words(int stages) {
  return 1 + 2 * stages;
}

// Completes p's layout (the pooling jobs' CTA layouts, the row tiles, the plan), zeroes its control words
// and launches the pipeline. Set by the caller: p.scoring (every field of score_rows_kernel's but the
// pooled outputs' contents), p.scales, p.pooling's jobs (both) with its lengths, d and band bits,
// p.stage_heads, p.chunks, p.calibrate and p.control (pipeline_control_words(batch * chunks) words).
template <typename Element, int kItems>
void launch_pooled_pipeline_items(PipelineParams& p, cudaStream_t stream) {
  constexpr int kRows = score_rows_per_cta(kItems), kThreads = kRows * 32;
  const ScoringParams& s = p.scoring;
  const int vector = std::min(pool_vector_width(p.pooling.job[0], s.d, sizeof(Element)),
                              pool_vector_width(p.pooling.job[1], s.d, sizeof(Element)));
  for (int j = 0; j < 2; ++j) pool_cta_layout(p.pooling.job[j], p.stage_heads[j], s.d, vector, kThreads);
  const PoolJob &q = p.pooling.job[0], &k = p.pooling.job[1];
  p.row_tiles = (s.nq + kRows - 1) / kRows;
  p.plan =
      pipeline_plan(s.batch * p.chunks, (q.blocks + q.blocks_per_cta - 1) / q.blocks_per_cta,
                    (k.blocks + k.blocks_per_cta - 1) / k.blocks_per_cta, p.stage_heads[0] * p.row_tiles);
  check_cuda(cudaMemsetAsync(p.control, 0, sizeof(unsigned) * pipeline_control_words(p.plan.stages), stream),
             "pipeline control words");
  const auto kernel =
      vector == 8 ? pooled_pipeline_kernel<Element, kItems, 8> : pooled_pipeline_kernel<Element, kItems, 1>;
  const std::size_t smem = score_rows_smem_bytes(s.d, kItems);
  check_cuda(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
      "pipeline shared memory opt-in");
  kernel<<<static_cast<unsigned>(pipeline_tickets(p.plan)), kThreads, smem, stream>>>(p);
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
