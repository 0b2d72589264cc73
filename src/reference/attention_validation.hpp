// Argument checks shared by every CPU attention entry (the reference and the blocked fast path): one place
// decides what a valid call is, so both reject the same inputs with the same errors.
#pragma once
#include <cstdint>
#include <vector>

#include "sparsefill/reference_attention.hpp"

namespace sparsefill {

// Validates q/k/v, the mask against the problem, the key order (a permutation of each row's keys), finite
// inputs, the output views and the scale; returns the problem. Throws Error naming the argument.
AttentionProblem validate_attention_call(const TensorView& q, const TensorView& k, const TensorView& v,
                                         const VarlenSequences& varlen, const BlockMask* mask,
                                         const std::vector<std::int32_t>* key_order,
                                         const AttentionOptions& options, const ReferenceOutputs& outputs);

}  // namespace sparsefill
