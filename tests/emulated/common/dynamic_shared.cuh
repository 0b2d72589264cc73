// Host form of cuda/common/dynamic_shared.cuh for the device emulator: the emulated block's buffer.
#pragma once
#include "support/device_emulator.hpp"

namespace sparsefill::cuda {

template <typename T>
inline T* dynamic_shared() {
  return reinterpret_cast<T*>(testing::emulated::dynamic_shared_memory());
}

}  // namespace sparsefill::cuda
