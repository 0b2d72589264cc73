// PBS's permuted attention on the Hopper kernel (used by pipeline/permuted_attention.cu; design note).
//
// The Hopper kernel loads key tiles by TMA, so it cannot gather keys through PBS's key order as the generic
// kernel does. Instead the caller hands it K and V already copied per query head in permuted order, and the
// original position of every key row: the element mask compares those positions with the query rows', and
// each key block's first and last original position decide, as its index range does without positions,
// whether the block lies entirely above the diagonal (skipped) or crosses it (masked element-wise).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "sparsefill/cuda/block_sparse_attention.hpp"

namespace sparsefill::cuda {

struct KeyPositions {
  const std::int32_t* keys = nullptr;    // [batch, heads_q, max_seqlen_k]: original position of each key row
  const std::int32_t* blocks = nullptr;  // [batch, heads_q, num_k_blocks, 2]: first and last of each block's
};

// BlockSparseAttention::run for `args` whose k/v are the permuted copies (heads_kv == heads_q, key_order
// null) on the Hopper kernel, causality by `positions`. Error("key_order") where the Hopper kernel cannot
// take `args` (kernel_name is not "hopper-wgmma-tma") or positions are missing; plan() is
// BlockSparseAttention's.
void run_with_key_positions(const BlockSparseAttentionArgs& args, const KeyPositions& positions,
                            void* workspace, cudaStream_t stream);

}  // namespace sparsefill::cuda
