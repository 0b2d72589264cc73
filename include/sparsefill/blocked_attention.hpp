// Fast CPU attention: the same function as reference_attention / reference_permuted_attention (same arguments,
// same errors, same empty-row and causal conventions) for fp32 fixed-length inputs, computed block-wise with
// OpenBLAS sgemm instead of row by row. It is what the real-model evaluation runs on a machine without a GPU;
// the reference stays the definition and the tests compare the two.
//
// q [batch, seqlen_q, heads_q, head_dim], k/v [batch, seqlen_k, heads_kv, head_dim], fp32, last dim
// contiguous, other strides arbitrary; outputs.out like q (fp32), outputs.lse optional [batch, heads_q,
// seqlen_q] fp32/fp64. mask: nullptr for dense. key_order: nullptr, or PBS's per-(batch, query head) key
// permutation (see reference_permuted_attention), with causality on original positions. block_mass is not
// offered. Accumulation is fp32 (sgemm), softmax in fp32 with a polynomial exp (relative error ~2e-7).
#pragma once
#include <cstdint>
#include <vector>

#include "sparsefill/reference_attention.hpp"

namespace sparsefill {

void blocked_attention(const TensorView& q, const TensorView& k, const TensorView& v, const BlockMask* mask,
                       const std::vector<std::int32_t>* key_order, const AttentionOptions& options,
                       const ReferenceOutputs& outputs);

}  // namespace sparsefill
