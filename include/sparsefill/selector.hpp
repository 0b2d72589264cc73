// Block selectors: given q, k (and v) they return a canonical block mask (PBS also a key permutation).
// Selectors know nothing of the attention kernels; kernels only consume masks.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sparsefill/attention_problem.hpp"
#include "sparsefill/block_mask.hpp"
#include "sparsefill/rope.hpp"

namespace sparsefill {

struct SelectorInputs {
  TensorView q, k, v;         // FlashAttention layout (see attention_problem.hpp)
  VarlenSequences varlen;     // optional
  bool causal = true;
  std::int64_t block_size = kDefaultBlockSize;
  RopeLayout rope_layout = RopeLayout::kRotateHalf;  // how q/k pair their RoPE dims (Prism's bands)
};

struct Selection {
  BlockMask mask;
};

class Selector {
 public:
  virtual ~Selector() = default;
  virtual std::string name() const = 0;
  virtual Selection select(const SelectorInputs& inputs) const = 0;
};

// Known method names, in the order the CLI lists them.
std::vector<std::string> selector_names();
// Error("method") for an unknown name.
std::unique_ptr<Selector> make_selector(const std::string& method);

}  // namespace sparsefill
