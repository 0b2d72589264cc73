// The pooled pipeline's kernels for bf16 inputs (see pooled_pipeline_launch.cuh).
#include "select/pooled_pipeline_launch.cuh"

namespace sparsefill::cuda::select {

template void launch_pooled_pipeline<__nv_bfloat16>(PipelineParams&, cudaStream_t);

}  // namespace sparsefill::cuda::select
