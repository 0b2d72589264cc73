// Host form of cuda/select/element_convert.cuh for the device emulator: the emulated kernels read fp32
// inputs, and a staged copy lands at once.
#pragma once

namespace sparsefill::cuda::select {

inline float to_float(float x) { return x; }

template <int kVector, typename Element>
inline void load_vector(const Element* x, float (&out)[kVector]) {
  for (int i = 0; i < kVector; ++i) out[i] = to_float(x[i]);
}

template <typename Element, int kVector>
struct RawVector {
  Element e[kVector];
};
template <int kVector, typename Element>
inline RawVector<Element, kVector> load_raw(const Element* x) {
  RawVector<Element, kVector> r;
  for (int i = 0; i < kVector; ++i) r.e[i] = x[i];
  return r;
}
template <typename Element, int kVector>
inline void raw_to_float(const RawVector<Element, kVector>& r, float (&out)[kVector]) {
  for (int i = 0; i < kVector; ++i) out[i] = to_float(r.e[i]);
}

template <typename Element>
struct StagedVector {
  Element v[8];
};
template <typename Element>
inline void stage_vector(StagedVector<Element>* slot, const Element* x) {
  for (int i = 0; i < 8; ++i) slot->v[i] = x[i];
}
inline void stage_commit() {}
template <int kPending>
inline void stage_wait() {}
template <typename Element>
inline void staged_vector(const StagedVector<Element>& slot, float (&out)[8]) {
  for (int i = 0; i < 8; ++i) out[i] = to_float(slot.v[i]);
}

}  // namespace sparsefill::cuda::select
