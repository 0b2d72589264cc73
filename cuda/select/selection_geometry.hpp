// Geometry of a GPU selection call (host side): shapes, lengths and strides read off GpuSelectionArgs, with
// the argument checks every GPU selector shares.
#pragma once
#include <cstdint>
#include <string>

#include "select/sequence_lengths.cuh"
#include "sparsefill/cuda/gpu_selection.hpp"

namespace sparsefill::cuda {

inline constexpr int kMaxKeyBlocks = 64 * 32;  // the row rules' capacity: 64 blocks per lane
inline constexpr int kMaxHeadDim = 256;

struct Geometry {
  int batch, lq, lk, heads_q, heads_kv, d, nq, nk;  // varlen: lq, lk (and nq, nk) of the longest sequence
  bool varlen;
};

// Element strides (batch, token, head) of a q/k view; the batch stride is 0 for varlen (tokens are absolute).
struct Strides {
  std::int64_t batch, token, head;
};
Strides strides_of(const TensorView& t, bool varlen);

// The call's q and k with their element strides.
select::QkTensors qk_tensors(const GpuSelectionArgs& a, const Geometry& g);

// Clear errors naming the argument for shapes, dtypes, lengths and the mask pointers (no device reads).
Geometry geometry_of(const GpuSelectionArgs& a);

// Error("q" / "k") unless q and k can be read as 16-byte rows (pointer and strides multiples of 16 bytes), as the
// tensor-core selectors (`method`) read them.
void require_16_byte_rows(const GpuSelectionArgs& a, const std::string& method);

}  // namespace sparsefill::cuda
