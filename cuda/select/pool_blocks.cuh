// Block mean pooling of Q or K on the GPU, fp64 (the pooled selectors: Prism, mean pooling, PBS-Attn,
// FlexPrefill).
#pragma once
#include <cstdint>

#include "select/sequence_lengths.cuh"

namespace sparsefill::cuda::select {

// Block mean pooling: the sum over the block's tokens (token order) of x, fp64, divided by the block (or, with
// `by_count`, by the tokens present: FlexPrefill's rescaled last block), written as
// out[b, h, u, c] or, `transposed`, out[b, h, c, u] (pooled keys: the row kernel's threads walk blocks u, so
// that layout makes their loads coalesced). Head h reads input head h / group. With `order` (PBS: [batch, heads,
// width]) position t reads token order[t] (the permuted keys). Blocks past a shorter sequence's end (varlen)
// are written as zeros. `keys` picks the key-side lengths.
template <typename Element>
__global__ void pool_blocks_kernel(const Element* x, std::int64_t s_batch, std::int64_t s_token, std::int64_t s_head,
                                   Lengths lengths, bool keys, int heads, int group, int d, bool transposed,
                                   const std::int32_t* order, int width, bool by_count, double* out) {
  const int u = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int nb = gridDim.x, block = lengths.block;
  const int start = keys ? lengths.k_start(b) : lengths.q_start(b);
  const int t_end = min(keys ? lengths.k(b) : lengths.q(b), (u + 1) * block);
  const std::int64_t head = static_cast<std::int64_t>(b) * heads + h;
  const std::int32_t* tokens = order ? order + head * width : nullptr;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    double sum = 0.0;
    for (int t = u * block; t < t_end; ++t) {
      const int token = tokens ? tokens[t] : t;
      sum += static_cast<double>(static_cast<float>(x[b * s_batch + (start + token) * s_token + (h / group) * s_head + c]));
    }
    const int divisor = by_count ? max(t_end - u * block, 1) : block;
    out[transposed ? (head * d + c) * nb + u : (head * nb + u) * d + c] = sum / divisor;
  }
}

}  // namespace sparsefill::cuda::select
