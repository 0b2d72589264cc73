// The tiled stride kernels for fp16 inputs, two passes (see stride_tile_launch.cuh).
#include "select/stride_tile_launch.cuh"

namespace sparsefill::cuda::select {

template void launch_stride_tile<__half, false>(const StrideTileParams<__half>&, const StrideTilePlan&, dim3,
                                                cudaStream_t);

}  // namespace sparsefill::cuda::select
