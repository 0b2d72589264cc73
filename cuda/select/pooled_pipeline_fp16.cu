// The pooled pipeline's kernels for fp16 inputs (see pooled_pipeline_launch.cuh).
#include "select/pooled_pipeline_launch.cuh"

namespace sparsefill::cuda::select {

template void launch_pooled_pipeline<__half>(PipelineParams&, cudaStream_t);

}  // namespace sparsefill::cuda::select
