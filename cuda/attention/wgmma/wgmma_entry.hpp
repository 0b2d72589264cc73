// Entry points of the Hopper (wgmma + TMA) kernel, one translation unit per dtype so they compile in parallel.
// Preconditions (checked by the launcher's dispatch): an sm_90 device, 128x128 mask blocks, 16-byte aligned
// q/k/v/out rows, head_dim 64 or 128; `p.tile_rows` == kRows and the schedule built for that tile height.
#pragma once
#include <cuda_runtime.h>
#include <cutlass/numeric_types.h>

#include "attention/attention_params.hpp"

namespace sparsefill::cuda::wgmma {

inline constexpr int kRows = 128;  // query rows per work item

// Extents of the TMA views: tokens per batch entry (fixed length) or in total (varlen, batch 1).
struct TmaExtents {
  int q_tokens, k_tokens, batch;
};

// Launches one CTA per scheduled item. Element: cutlass::bfloat16_t or cutlass::half_t (instantiated in
// wgmma_bf16.cu and wgmma_fp16.cu).
template <class Element>
cudaError_t launch(int head_dim, const AttentionKernelParams& p, const TmaExtents& e, int items,
                   cudaStream_t stream);

}  // namespace sparsefill::cuda::wgmma
