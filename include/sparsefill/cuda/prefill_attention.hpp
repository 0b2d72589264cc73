// Sparse prefill attention on the GPU in one call: block selection (GpuSelection) into a mask held in the
// workspace, then the block-sparse kernel (BlockSparseAttention) over it. Method "dense" skips selection and
// runs every causally visible block (our dense path). No host synchronisation and no allocation: the call
// can be captured in a CUDA graph.
//
// q [batch, seqlen_q, heads_q, head_dim], k/v [batch, seqlen_k, heads_kv, head_dim], out like q: device
// memory, bf16/fp16, head_dim 64 or 128 (the attention kernel's); or varlen [total_tokens, heads, head_dim] with
// cu_seqlens. lse: optional device fp32 [batch, heads_q, max_seqlen_q]. The mask the call used stays readable in
// the workspace (mask_in_workspace). Methods: "dense" and every GpuSelection method. PBS keeps its key order in
// the workspace and, on sm_90 with 128-token blocks, attends in one Hopper-kernel call over per-query-head
// permuted K/V copies (causality by the keys' original positions; the workspace holds the copies: 2 x tokens x
// heads_q x head_dim elements).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "sparsefill/cuda/block_sparse_attention.hpp"
#include "sparsefill/rope.hpp"
#include "sparsefill/selector.hpp"

namespace sparsefill::cuda {

struct PrefillAttentionArgs {
  TensorView q, k, v, out;
  float* lse = nullptr;
  bool causal = true;
  std::int64_t block_size = 128;
  RopeLayout rope_layout = RopeLayout::kRotateHalf;
  // Varlen: device cu_seqlens [batch + 1] and the host-known batch and maximum lengths.
  const std::int32_t* cu_seqlens_q = nullptr;
  const std::int32_t* cu_seqlens_k = nullptr;
  std::int64_t varlen_batch = 0, max_seqlen_q = 0, max_seqlen_k = 0;
};

// Error("method") for a method without a GPU selector (see GpuSelection::methods(); "dense" is accepted too).
std::size_t prefill_attention_workspace_size(const PrefillAttentionArgs& args, const std::string& method,
                                             const SelectorSettings& settings);
void prefill_attention(const PrefillAttentionArgs& args, const std::string& method, const SelectorSettings& settings,
                       void* workspace, void* stream);
// Where the mask of the last call sits in `workspace` (heads: 1 for dense, heads_q otherwise).
DeviceBlockMask mask_in_workspace(const PrefillAttentionArgs& args, const std::string& method, void* workspace);
// PBS: where the key order of the last call sits in `workspace` (device int32 [batch, heads_q, max_seqlen_k], the
// layout of Selection::key_order); null for every other method.
const std::int32_t* key_order_in_workspace(const PrefillAttentionArgs& args, const std::string& method, void* workspace);

}  // namespace sparsefill::cuda
