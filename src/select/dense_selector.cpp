// The dense "selector": every causally visible block, one mask row shared by all heads.
#include "select/selectors.hpp"

namespace sparsefill {
namespace {

class DenseSelector final : public Selector {
 public:
  std::string name() const override { return "dense"; }
  Selection select(const SelectorInputs& in) const override {
    const AttentionProblem problem = describe_attention(in.q, in.k, in.v, in.varlen);
    return {full_block_mask(problem, in.causal, in.block_size, 1), {}, 0};
  }
};

}  // namespace

std::unique_ptr<Selector> make_dense_selector() {
  return std::make_unique<DenseSelector>();
}

}  // namespace sparsefill
