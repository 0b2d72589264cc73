// Host form of cuda/select/element_convert.cuh for the device emulator: the emulated kernels read fp32 inputs.
#pragma once

namespace sparsefill::cuda::select {

inline float to_float(float x) { return x; }

template <int kVector, typename Element>
inline void load_vector(const Element* x, float (&out)[kVector]) {
  for (int i = 0; i < kVector; ++i) out[i] = to_float(x[i]);
}

}  // namespace sparsefill::cuda::select
