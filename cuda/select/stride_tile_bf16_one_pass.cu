// The tiled stride kernels for bf16 inputs, one pass (see stride_tile_launch.cuh).
#include "select/stride_tile_launch.cuh"

namespace sparsefill::cuda::select {

template void launch_stride_tile<__nv_bfloat16, true>(const StrideTileParams<__nv_bfloat16>&,
                                                      const StrideTilePlan&, dim3, cudaStream_t);

}  // namespace sparsefill::cuda::select
