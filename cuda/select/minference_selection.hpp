// Host side of the MInference vertical-slash selector on the GPU; kernels in minference_kernels.cuh.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "select/selection_geometry.hpp"

namespace sparsefill::cuda {

// Error(<parameter>) for inputs or settings the GPU form does not take (causal only, last_q <= 64); no device reads.
void validate_minference_selection(const SelectorSettings& settings, const GpuSelectionArgs& args, const Geometry& g);
// Row statistics, the fp64 vertical and slash sums, each block's lowest kept column and the kept offsets.
std::size_t minference_workspace_size(const SelectorSettings& settings, const GpuSelectionArgs& args,
                                      const Geometry& g);
void run_minference_selection(const SelectorSettings& settings, const GpuSelectionArgs& args, const Geometry& g,
                              void* workspace, cudaStream_t stream);

}  // namespace sparsefill::cuda
