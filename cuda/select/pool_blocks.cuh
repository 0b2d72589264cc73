// Block mean pooling of Q or K on the GPU, fp64 (the pooled selectors: Prism, mean pooling, PBS-Attn,
// FlexPrefill).
//
// One CTA pools one block of one sequence for every head, so it streams whole token rows (heads x d elements)
// and each thread sums kVector consecutive dims of one head: with kVector = 8 a token's share is one 16-byte
// load, so the kernel runs at memory bandwidth rather than at one 2-byte load per thread and token. Sums are
// fp64 in token order, as the CPU's.
#pragma once
#include <cstdint>

#include "select/element_convert.cuh"
#include "select/sequence_lengths.cuh"

namespace sparsefill::cuda::select {

struct PoolParams {
  const void* x;  // [batch, tokens, heads / group, d] at these element strides (batch stride 0 for varlen)
  std::int64_t s_batch, s_token, s_head;
  Lengths lengths;
  bool keys;                  // the key-side lengths
  int heads, group, d;        // output heads; head h reads input head h / group
  bool transposed;            // out[b, h, c, u] (pooled keys: the row kernels walk blocks u) instead of out[b, h, u, c]
  const std::int32_t* order;  // PBS: [batch, heads, width]: position t reads token order[t]; null: t itself
  int width;
  bool by_count;  // divide by the tokens present (FlexPrefill's rescaled last block) instead of by the block
  double* out;
  int blocks;  // blocks per head in the output layout (the longest sequence's)
};

// The vector width pool_blocks_kernel may use: 8 when every 8 consecutive dims of a head are one aligned
// 16-byte load of 2-byte elements.
inline int pool_vector_width(const PoolParams& p, std::size_t element_bytes) {
  const std::int64_t align = 16 / static_cast<std::int64_t>(element_bytes);
  const bool aligned = element_bytes == 2 && reinterpret_cast<std::uintptr_t>(p.x) % 16 == 0 && p.d % 8 == 0 &&
                       p.s_batch % align == 0 && p.s_token % align == 0 && p.s_head % align == 0;
  return aligned ? 8 : 1;
}

// Threads of one pooling CTA: the (head, dim group) units, at most 512.
inline int pool_threads(const PoolParams& p, int vector) {
  const int units = p.heads * (p.d / vector);
  return units >= 512 ? 512 : (units + 31) / 32 * 32;
}

// Block mean pooling: the sum over the block's tokens (token order) of x, fp64, divided by the block (or, with
// `by_count`, by the tokens present), for every head. Grid (blocks of the longest sequence, batch); blocks
// past a shorter sequence's end (varlen) are written as zeros.
template <typename Element, int kVector>
__global__ void pool_blocks_kernel(const PoolParams p) {
  const int u = blockIdx.x, b = blockIdx.y, block = p.lengths.block;
  const int start = p.keys ? p.lengths.k_start(b) : p.lengths.q_start(b);
  const int t_end = min(p.keys ? p.lengths.k(b) : p.lengths.q(b), (u + 1) * block);
  const int divisor = p.by_count ? max(t_end - u * block, 1) : block;
  const int groups = p.d / kVector;
  const auto* x = static_cast<const Element*>(p.x) + b * p.s_batch + static_cast<std::int64_t>(start) * p.s_token;
  for (int unit = threadIdx.x; unit < p.heads * groups; unit += blockDim.x) {
    const int h = unit / groups, c0 = (unit % groups) * kVector;
    const std::int64_t head = static_cast<std::int64_t>(b) * p.heads + h;
    const std::int32_t* tokens = p.order ? p.order + head * p.width : nullptr;
    const Element* column = x + (h / p.group) * p.s_head + c0;
    double sum[kVector] = {};
#pragma unroll 4
    for (int t = u * block; t < t_end; ++t) {
      float v[kVector];
      load_vector<kVector>(column + static_cast<std::int64_t>(tokens ? tokens[t] : t) * p.s_token, v);
#pragma unroll
      for (int i = 0; i < kVector; ++i) sum[i] += static_cast<double>(v[i]);
    }
#pragma unroll
    for (int i = 0; i < kVector; ++i) {
      const int c = c0 + i;
      p.out[p.transposed ? (head * p.d + c) * p.blocks + u : (head * p.blocks + u) * p.d + c] = sum[i] / divisor;
    }
  }
}

}  // namespace sparsefill::cuda::select
