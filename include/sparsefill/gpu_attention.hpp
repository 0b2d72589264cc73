// Block-sparse attention of host tensors on the GPU: copies q/k/v and the mask to the device, plans and runs
// the kernel of cuda/block_sparse_attention.hpp, copies the output (and LSE) back. For tools and tests;
// serving code keeps its tensors on the device and calls BlockSparseAttention directly.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "sparsefill/block_mask.hpp"
#include "sparsefill/selector.hpp"
#include "sparsefill/tensor.hpp"

namespace sparsefill {

// q/k/v: host, fixed-length FlashAttention layout, bf16 or fp16, head_dim 64 or 128. out: host, q's shape,
// any floating dtype. lse: optional host fp32 [batch, heads_q, seqlen_q]. key_order: optional PBS order
// (Selection::key_order; empty for none). Throws Error("device") without a CUDA build or device, and the
// kernel's argument errors otherwise.
void gpu_block_sparse_attention(const TensorView& q, const TensorView& k, const TensorView& v,
                                const BlockMask& mask, bool causal, const TensorView& out,
                                const TensorView& lse, const std::vector<std::int32_t>& key_order = {});

// Methods whose selection runs on the GPU (empty in a build without CUDA).
std::vector<std::string> gpu_selector_methods();

// A Selector running `method`'s GPU form (cuda/gpu_selection.hpp) on host tensors: copies q/k (bf16/fp16, fixed
// length or varlen) to the device and the mask back; named "<method> (GPU)". Error("device") without CUDA or a
// device, Error("method") for a method without a GPU form.
std::unique_ptr<Selector> make_gpu_selector(const std::string& method, const SelectorSettings& settings);

}  // namespace sparsefill
