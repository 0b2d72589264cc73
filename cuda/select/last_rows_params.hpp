// LastRowsParams (last_rows.cuh) from a selection call's arguments: the q/k views and lengths; the caller sets
// the rows, scale, causality, segment and the workspace pointers.
#pragma once
#include "select/last_rows.cuh"
#include "select/selection_geometry.hpp"

namespace sparsefill::cuda {

inline select::LastRowsParams last_rows_params(const GpuSelectionArgs& args, const Geometry& g,
                                               const select::Lengths& lengths) {
  select::LastRowsParams p{};
  static_cast<select::QkTensors&>(p) = qk_tensors(args, g);
  p.batch = g.batch, p.heads_q = g.heads_q, p.heads_kv = g.heads_kv, p.d = g.d, p.width = g.lk;
  p.lengths = lengths;
  return p;
}

// Chunks of the last-rows passes over the longest sequence's keys.
inline int last_rows_chunks(const Geometry& g) {
  return (g.lk + select::kProxyChunk - 1) / select::kProxyChunk;
}

}  // namespace sparsefill::cuda
