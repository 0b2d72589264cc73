// SPARSEFILL_HOST_DEVICE marks a function that both the device code and host-only builds (tests, launch
// planning) compile: __host__ __device__ under nvcc, plain C++ elsewhere.
#pragma once

#if defined(__CUDACC__)
#define SPARSEFILL_HOST_DEVICE __host__ __device__
#else
#define SPARSEFILL_HOST_DEVICE
#endif
