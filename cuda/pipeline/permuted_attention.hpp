// PBS-Attn's permuted attention at the Hopper kernel's speed (used by prefill_attention; design note).
//
// A PBS mask row splits into blocks of earlier segments, whose keys all precede the row's queries (no element
// mask), and the blocks of its own segment, masked by original positions. The first part runs on the Hopper
// kernel over K/V copied per query head in permuted order (as the reference's repeat_kv), the second on the
// generic kernel's key-order path, and the two partial results merge by their log-sum-exps:
//   out = (o1 e^{lse1} + o2 e^{lse2}) / (e^{lse1} + e^{lse2}),  lse = log(e^{lse1} + e^{lse2}).
// The same function as one key-order call (reference_permuted_attention), with the two partial outputs rounded
// to the output dtype before the merge.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "sparsefill/cuda/block_sparse_attention.hpp"

namespace sparsefill::cuda {

// `args`: the one-call form (mask over permuted positions, heads_q mask heads, key_order set, causal).
// Whether the split path can take it (the Hopper kernel runs its first part); otherwise callers use the one
// key-order call.
bool permuted_attention_splits(const BlockSparseAttentionArgs& args);
// Workspace: permuted K/V copies (2 x tokens x heads_q x head_dim elements), the two masks, the second partial
// output and both partial log-sum-exps, and the attention kernels' workspace.
std::size_t permuted_attention_workspace_size(const BlockSparseAttentionArgs& args);
// `segment_blocks`: PBS's segment in mask blocks.
void permuted_attention(const BlockSparseAttentionArgs& args, int segment_blocks, void* workspace,
                        cudaStream_t stream);

}  // namespace sparsefill::cuda
