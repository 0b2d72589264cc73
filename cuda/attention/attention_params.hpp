// The flat parameter struct passed by value to the attention kernels (the ABI boundary between launcher and
// kernel).
#pragma once
#include <cstdint>

namespace sparsefill::cuda {

struct AttentionKernelParams {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  float* lse;  // may be null
  // Element strides: token, head (the batch stride is 0 for varlen, where tokens are absolute).
  std::int64_t q_batch, q_token, q_head;
  std::int64_t k_batch, k_token, k_head;
  std::int64_t v_batch, v_token, v_head;
  std::int64_t o_batch, o_token, o_head;
  const std::int32_t* cu_seqlens_q;  // null for fixed-length inputs
  const std::int32_t* cu_seqlens_k;
  int seqlen_q, seqlen_k;  // fixed-length lengths, or the maxima for varlen
  int batch, heads_q, heads_kv;
  const std::int32_t* kv_num_blocks;
  const std::int32_t* kv_indices;
  int mask_heads, num_q_blocks, num_k_blocks, block_q, block_k;
  int causal;
  const std::int32_t* key_order;  // PBS: [batch, heads_q, seqlen_k] original key at each position, or null
  // PBS on the Hopper kernel (key_positions.hpp): k/v hold each query head's keys in permuted order, and
  // these give the original position of each key row, [batch, heads_q, seqlen_k], and the first and last
  // original position in each key block, [batch, heads_q, num_k_blocks, 2]; causality compares original
  // positions. Null otherwise.
  const std::int32_t* key_positions;
  const std::int32_t* block_positions;
  float scale_log2;              // softmax scale times log2(e)
  const std::int32_t* schedule;  // work items, heaviest first; item = (b * heads_q + h) * q_tiles + tile
  int tile_rows;                 // query rows per work item (the kernel's tile height)
  int q_tiles;                   // tiles per (sequence, head) at the maximum length
  int vector_loads;  // 1 when q/k/v rows are 16-byte aligned (pointers and strides): 16-byte loads
};

}  // namespace sparsefill::cuda
