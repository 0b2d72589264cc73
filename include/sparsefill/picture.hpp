// PNG pictures: block-mask heat maps and line plots (libpng).
#pragma once
#include <string>
#include <vector>

#include "sparsefill/block_mask.hpp"

namespace sparsefill {

// One panel per query head (up to `max_heads`, batch 0): selected blocks bright, unselected visible blocks dark,
// blocks above the causal diagonal black. With `block_mass` ([batch, heads_q, nQb, nKb]) each head gets a second
// panel showing log10 of the true block attention mass (1e-6 .. 1) in a perceptual colour map.
void write_mask_png(const std::string& path, const BlockMask& mask, const AttentionProblem& problem, bool causal,
                    const TensorView* block_mass = nullptr, int max_heads = 32);

}  // namespace sparsefill
