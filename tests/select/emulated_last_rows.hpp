// Last-rows parameters (cuda/select/last_rows.cuh) of one sequence whose q and k are token-major host arrays
// ([tokens, heads, d]), for the emulated kernel tests; the caller sets the rows, scale, causality and buffers.
#pragma once
#include <cstdint>

#include "support/device_emulator.hpp"  // before any device code

#include "select/last_rows.cuh"

namespace sparsefill::testing {

inline cuda::select::LastRowsParams one_sequence_rows(const void* q, const void* k, int lq, int lk, int heads_q,
                                                      int heads_kv, int d, int block) {
  cuda::select::LastRowsParams p{};
  p.q = q;
  p.k = k;
  p.q_batch = static_cast<std::int64_t>(lq) * heads_q * d;
  p.q_token = heads_q * d;
  p.q_head = d;
  p.k_batch = static_cast<std::int64_t>(lk) * heads_kv * d;
  p.k_token = heads_kv * d;
  p.k_head = d;
  p.batch = 1;
  p.heads_q = heads_q;
  p.heads_kv = heads_kv;
  p.d = d;
  p.width = lk;
  p.lengths.lq = lq;
  p.lengths.lk = lk;
  p.lengths.block = block;
  p.chunks = (lk + cuda::select::kProxyChunk - 1) / cuda::select::kProxyChunk;
  return p;
}

}  // namespace sparsefill::testing
