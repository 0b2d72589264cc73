// Host form of cuda/select/element_convert.cuh for the device emulator: the emulated kernels read fp32 inputs.
#pragma once

namespace sparsefill::cuda::select {

inline float to_float(float x) { return x; }

}  // namespace sparsefill::cuda::select
