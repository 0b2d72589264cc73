// Scene presets: their geometry and the recipe of every query head.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "sparsefill/scene.hpp"

namespace sparsefill {

// One recipe per query head of `preset` (deterministic in seed). head_dim sets the pair counts.
std::vector<HeadRecipe> build_head_recipes(const std::string& preset, std::int64_t heads_q,
                                           std::int64_t head_dim, std::uint64_t seed);

}  // namespace sparsefill
