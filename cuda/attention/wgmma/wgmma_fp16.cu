// The Hopper kernel's fp16 instances (head_dim 64 and 128).
#include "attention/wgmma/wgmma_launch.cuh"

template cudaError_t sparsefill::cuda::wgmma::launch<cutlass::half_t>(int, const sparsefill::cuda::AttentionKernelParams&,
                                                                   const sparsefill::cuda::wgmma::TmaExtents&, int,
                                                                   cudaStream_t);
