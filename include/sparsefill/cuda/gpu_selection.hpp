// Block selection on the GPU (CUTLASS-style host API). Methods: prism, meanpool, pbs (design notes in
// cuda/select/pooled_scoring.cuh and pbs_kernels.cuh), rr, xattn (cuda/select/stride_scoring.cuh).
//
//   GpuSelection selection(method, settings)   Error("method") when the method has no GPU form yet,
//                                               Error(<parameter>) for settings the GPU form does not take
//   selection.validate(args)                    clear errors naming the argument (no device reads)
//   selection.workspace_size(args)              bytes the caller allocates once (pooled Q/K and statistics;
//                                               PBS adds its proxy scores; RR's stride key sums, at most
//                                               32 MiB; XAttention none: 0; rr/xattn.passes = one adds
//                                               a scratch slot per resident CTA, sized by the current
//                                               device: ~78 MB at 128K on 132 SMs)
//   selection.run(args, workspace, stream)      never allocates, never synchronises: graph-capturable
//
// The mask it writes is the canonical per-query-head mask (block_mask.hpp) of the CPU selector with the same
// settings: kv_num_blocks [batch, heads_q, nQb] and kv_indices [batch, heads_q, nQb, nKb] (ascending, zeros
// after the count), in device memory. Decisions equal the CPU's except where a value lies within rounding of
// the threshold, or two blocks' (or lines') scores agree to that rounding at the cut: fp64 rounding for PBS
// (tree reductions sum in another order), fp32 for Prism and mean pooling (pooled means from fp32 sums of 16
// tokens; fp32-precision softmax numerators for the mass rules), the stride methods' tensor-core logits and
// MInference's and FlexPrefill's (tensor-core logits of the last rows, fp32-precision numerators; see the
// kernels' notes).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sparsefill/rope.hpp"
#include "sparsefill/selector.hpp"
#include "sparsefill/tensor.hpp"

namespace sparsefill::cuda {

struct GpuSelectionArgs {
  // Device memory, bf16 or fp16: [batch, seqlen, heads, head_dim], or varlen [total_tokens, heads, head_dim]
  // with the fields below set.
  TensorView q, k;
  bool causal = true;
  std::int64_t block_size = 128;
  RopeLayout rope_layout = RopeLayout::kRotateHalf;
  std::int32_t* kv_num_blocks = nullptr;  // device outputs, see above (varlen: blocks of the longest sequence;
  std::int32_t* kv_indices = nullptr;     // rows past a shorter sequence's end are left empty)
  // Varlen: device cu_seqlens [batch + 1] and the host-known batch and maximum lengths (as the attention's).
  const std::int32_t* cu_seqlens_q = nullptr;
  const std::int32_t* cu_seqlens_k = nullptr;
  std::int64_t varlen_batch = 0, max_seqlen_q = 0, max_seqlen_k = 0;
  // PBS only: device output [batch, heads_q, max_seqlen_k], the original index (within its sequence) of the key
  // each position reads (Selection::key_order's layout); the mask is over these permuted positions.
  std::int32_t* key_order = nullptr;
};

class GpuSelection {
 public:
  GpuSelection(const std::string& method, const SelectorSettings& settings);
  // Methods with a GPU form.
  static std::vector<std::string> methods();
  void validate(const GpuSelectionArgs& args) const;
  std::size_t workspace_size(const GpuSelectionArgs& args) const;
  // `workspace` may be null when workspace_size(args) is 0.
  void run(const GpuSelectionArgs& args, void* workspace, void* stream) const;

 private:
  std::string method_;
  SelectorSettings settings_;
};

}  // namespace sparsefill::cuda
