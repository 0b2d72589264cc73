// Builds without CUDA: the GPU entry point reports why it cannot run.
#include "sparsefill/error.hpp"
#include "sparsefill/gpu_attention.hpp"

namespace sparsefill {

void gpu_block_sparse_attention(const TensorView&, const TensorView&, const TensorView&, const BlockMask&,
                                bool, const TensorView&, const TensorView&, const std::vector<std::int32_t>&) {
  throw Error("device", "this build has no CUDA kernels (configure with a CUDA compiler)");
}

std::vector<std::string> gpu_selector_methods() {
  return {};
}

std::unique_ptr<Selector> make_gpu_selector(const std::string&, const SelectorSettings&) {
  throw Error("device", "this build has no CUDA kernels (configure with a CUDA compiler)");
}

}  // namespace sparsefill
