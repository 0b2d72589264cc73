// Prism's two RoPE bands (algorithms.md §1): the dims of the high-frequency band (the first d_high / 2
// frequency pairs) and the low-frequency band (the last d_low / 2 pairs), in the order their logits sum them,
// with each band's top-p. Shared by the CPU selector and the GPU one so both read the same dims.
#pragma once
#include <cstdint>
#include <vector>

#include "sparsefill/rope.hpp"
#include "sparsefill/selector_configs.hpp"

namespace sparsefill {

struct PrismBand {
  std::vector<std::int64_t> dims;
  double p = 0.95;
};

struct PrismBands {
  PrismBand high, low;
};

// Error("q") for an odd head_dim, Error("prism.d-high" / "prism.d-low" / "prism.p-high" / "prism.p-low") for
// settings out of range.
PrismBands prism_bands(const PrismConfig& config, std::int64_t head_dim, RopeLayout layout);

}  // namespace sparsefill
