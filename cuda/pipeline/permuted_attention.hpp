// PBS-Attn's permuted attention at the Hopper kernel's speed (used by prefill_attention; design note).
//
// PBS permutes each query head's keys inside fixed segments, so one KV head's keys sit in a different order
// for each query head of its group. The keys and values are copied per query head in permuted order (the
// reference's repeat_kv and gather), each key block's first and last original position is found, and the
// whole mask runs in one call of the Hopper kernel over the copies, causality by original positions
// (attention/key_positions.hpp): the same function as one key-order call on the generic kernel
// (reference_permuted_attention), which the copies only make fast.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "sparsefill/cuda/block_sparse_attention.hpp"

namespace sparsefill::cuda {

// `args`: the key-order form (mask over permuted positions, heads_q mask heads, key_order set, causal).
// Whether the Hopper kernel can take it; otherwise callers use the key-order call on the generic kernel.
bool permuted_attention_on_hopper(const BlockSparseAttentionArgs& args);
// Workspace: permuted K/V copies (2 x tokens x heads_q x head_dim elements), the blocks' positions and the
// attention kernel's workspace.
std::size_t permuted_attention_workspace_size(const BlockSparseAttentionArgs& args);
void permuted_attention(const BlockSparseAttentionArgs& args, void* workspace, cudaStream_t stream);

}  // namespace sparsefill::cuda
