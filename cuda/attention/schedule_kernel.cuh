// The planning kernel: the work of each (sequence, query head, tile) item, which the launcher sorts so
// the heaviest tiles start first.
#pragma once
#include <cstdint>

#include "attention/attention_params.hpp"

namespace sparsefill::cuda {

// Work of each (sequence, head, tile) item: its mask row's block count (the schedule sorts by it, heaviest
// first).
__global__ void tile_work_kernel(const AttentionKernelParams p, int items, std::int32_t* work,
                                 std::int32_t* ids) {
  const int item = blockIdx.x * blockDim.x + threadIdx.x;
  if (item >= items) return;
  const int tile = item % p.q_tiles;
  const int h = (item / p.q_tiles) % p.heads_q;
  const int b = item / (p.q_tiles * p.heads_q);
  const int mh = p.mask_heads == 1 ? 0 : (p.mask_heads == p.heads_q ? h : h / (p.heads_q / p.heads_kv));
  const int u = tile * p.tile_rows / p.block_q;
  work[item] = p.kv_num_blocks[(static_cast<long long>(b) * p.mask_heads + mh) * p.num_q_blocks + u];
  ids[item] = item;
}

}  // namespace sparsefill::cuda
