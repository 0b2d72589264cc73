// The block's dynamic shared memory, for kernels launched with the byte count of their *_smem_bytes function.
// One accessor, so that host tests can substitute a host buffer (tests/emulated/common/dynamic_shared.cuh).
#pragma once

namespace sparsefill::cuda {

template <typename T>
__device__ inline T* dynamic_shared() {
  extern __shared__ __align__(16) unsigned char dynamic_shared_bytes[];
  return reinterpret_cast<T*>(dynamic_shared_bytes);
}

}  // namespace sparsefill::cuda
