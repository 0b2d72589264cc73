// The Hopper kernel's bf16 instances (head_dim 64 and 128).
#include "attention/wgmma/wgmma_launch.cuh"

template cudaError_t sparsefill::cuda::wgmma::launch<cutlass::bfloat16_t>(int, const sparsefill::cuda::AttentionKernelParams&,
                                                                   const sparsefill::cuda::wgmma::TmaExtents&, int,
                                                                   cudaStream_t);
