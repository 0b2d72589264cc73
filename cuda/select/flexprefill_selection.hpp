// Host side of the FlexPrefill selector on the GPU; kernels in flexprefill_kernels.cuh, their order in
// flexprefill_launches.cuh.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "select/selection_geometry.hpp"

namespace sparsefill::cuda {

// Error(<parameter>) for inputs or settings FlexPrefill does not take (causal, seqlen_q == seqlen_k, a block of
// at most 128, at most 2048 key blocks) or that are out of range; no device reads.
void validate_flexprefill_selection(const SelectorSettings& settings, const GpuSelectionArgs& args,
                                    const Geometry& g);
// Row statistics, the line sums (later the pooled queries), the pooled keys, block sums, the map's radix
// histograms and per-head plans.
std::size_t flexprefill_workspace_size(const SelectorSettings& settings, const GpuSelectionArgs& args,
                                       const Geometry& g);
void run_flexprefill_selection(const SelectorSettings& settings, const GpuSelectionArgs& args, const Geometry& g,
                               void* workspace, cudaStream_t stream);

}  // namespace sparsefill::cuda
