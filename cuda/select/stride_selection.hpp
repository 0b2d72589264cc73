// Host side of the stride selectors (RRAttention, XAttention) on the GPU; kernels in stride_kernel.cuh.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <string>

#include "select/selection_geometry.hpp"

namespace sparsefill::cuda {

bool is_stride_method(const std::string& method);
// Error(<parameter>) for settings or inputs the stride kernels do not take (stride, tau, chunk size, head_dim,
// alignment); no device reads.
void validate_stride_selection(const std::string& method, const SelectorSettings& settings, const GpuSelectionArgs& args,
                               const Geometry& g);
// RRAttention: the key sums of as many (sequence, KV head) slots as fit in 32 MiB; XAttention: 0. With
// passes = one, plus the tiled kernel's scratch slots, one per CTA the current device holds at once.
std::size_t stride_workspace_size(const std::string& method, const SelectorSettings& settings,
                                  const GpuSelectionArgs& args, const Geometry& g);
void run_stride_selection(const std::string& method, const SelectorSettings& settings, const GpuSelectionArgs& args,
                          const Geometry& g, void* workspace, cudaStream_t stream);

}  // namespace sparsefill::cuda
