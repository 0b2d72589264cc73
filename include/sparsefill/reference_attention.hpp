// CPU reference attention: the meaning of every attention kernel in the library.
//
// out[b, t, h, :] = sum_j softmax_j(scale * q[b,t,h,:] . k[b,j,h/G,:]) v[b,j,h/G,:] over the keys j that are
// (a) inside an active block of the mask row (all keys without a mask) and (b) causally visible (bottom-right
// aligned). Accumulation in fp32 or fp64 (test truth). Uses every core.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "sparsefill/attention_problem.hpp"
#include "sparsefill/block_mask.hpp"

namespace sparsefill {

enum class Accumulation { kFP32, kFP64 };

struct AttentionOptions {
  bool causal = true;
  double scale = 0.0;  // 0 selects 1 / sqrt(head_dim)
};

struct ReferenceOptions {
  AttentionOptions attention;
  Accumulation accumulation = Accumulation::kFP32;
  std::function<void(double)> progress;  // called with the finished fraction, from the calling thread
};

// Outputs; every view except `out` is optional (data == nullptr means "not wanted").
struct ReferenceOutputs {
  // Same layout as q (fixed or varlen), any floating dtype (fp64 for test truth). Fully overwritten.
  TensorView out;
  // [batch, heads_q, max_seqlen_q], fp32 or fp64, natural log; -inf for rows without a visible key.
  TensorView lse;
  // [batch, heads_q, ceil(max_seqlen_q / mass_block), ceil(max_seqlen_k / mass_block)], fp32 or fp64: the
  // attention probability mass of each key block, averaged over the rows of the query block (rows sum to 1,
  // so each block row sums to 1 where any key is visible). Needs a dense call (mask == nullptr).
  TensorView block_mass;
  std::int64_t mass_block = kDefaultBlockSize;
};

// q/k/v: see attention_problem.hpp. mask: nullptr for dense, else validated against the problem.
void reference_attention(const TensorView& q, const TensorView& k, const TensorView& v,
                         const VarlenSequences& varlen, const BlockMask* mask,
                         const ReferenceOptions& options, const ReferenceOutputs& outputs);

// Permuted attention (PBS-Attn): query head h of sequence b reads its keys (and values) in the order
// key_order[(b * heads_q + h) * max_seqlen_k + p] = original key index at position p (a permutation of
// [0, seqlen_k) per row), restricted to the mask's blocks in that order; causality applies to the original
// positions (bottom-right). With segment-local orders this is exactly PBS's kernel: earlier segments need no
// mask, the own segment is masked by original positions. The output is in the original query order.
// block_mass is not offered.
void reference_permuted_attention(const TensorView& q, const TensorView& k, const TensorView& v,
                                  const VarlenSequences& varlen, const BlockMask& mask,
                                  const std::vector<std::int32_t>& key_order, const ReferenceOptions& options,
                                  const ReferenceOutputs& outputs);

}  // namespace sparsefill
