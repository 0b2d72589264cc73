// The geometry of one attention call, derived from (and validated against) the q/k/v views.
//
// Fixed-length: q [batch, seqlen_q, heads_q, head_dim], k/v [batch, seqlen_k, heads_kv, head_dim].
// Varlen: q [total_q, heads_q, head_dim], k/v [total_k, heads_kv, head_dim] plus host cu_seqlens (int32,
// batch+1, starting at 0, non-decreasing, ending at total). GQA/MQA: heads_q % heads_kv == 0; query head h
// reads KV head h / (heads_q / heads_kv).
//
// **Causal masks are bottom-right aligned**: query i of a sequence sees key j iff j <= i + seqlen_k -
// seqlen_q (PyTorch's default is top-left; ours matches FlashAttention). A query that sees no key gets output
// 0, LSE -inf.
#pragma once
#include <cstdint>
#include <vector>

#include "sparsefill/tensor.hpp"

namespace sparsefill {

// Host cu_seqlens for a varlen batch; leave both null for fixed-length [batch, seqlen, heads, dim] inputs.
struct VarlenSequences {
  const std::int32_t* cu_seqlens_q = nullptr;  // [batch + 1]
  const std::int32_t* cu_seqlens_k = nullptr;  // [batch + 1]
  std::int64_t batch = 0;
  bool active() const { return cu_seqlens_q != nullptr || cu_seqlens_k != nullptr; }
};

struct AttentionProblem {
  std::int64_t batch = 0;
  std::int64_t heads_q = 0;
  std::int64_t heads_kv = 0;
  std::int64_t head_dim = 0;
  bool varlen = false;
  std::vector<std::int64_t> seqlen_q;  // per sequence
  std::vector<std::int64_t> seqlen_k;
  std::vector<std::int64_t> start_q;  // first token of each sequence (varlen) or 0
  std::vector<std::int64_t> start_k;

  std::int64_t group_size() const { return heads_q / heads_kv; }
  std::int64_t max_seqlen_q() const;
  std::int64_t max_seqlen_k() const;
  std::int64_t kv_head_of(std::int64_t query_head) const { return query_head / group_size(); }
};

// Validates q/k/v (rank, dtype bf16/fp16/fp32 and equal across the three, contiguous last dim, matching
// batch/heads/dims, heads_q % heads_kv, head_dim in 1..512, non-empty, cu_seqlens) and returns the geometry.
// Throws Error naming "q", "k", "v", "cu_seqlens_q" or "cu_seqlens_k".
AttentionProblem describe_attention(const TensorView& q, const TensorView& k, const TensorView& v,
                                    const VarlenSequences& varlen = {});

// Element offset of (token t of sequence b, head h, dim 0) in a q/k/v view of the given problem.
std::int64_t token_offset(const TensorView& view, bool varlen, std::int64_t start, std::int64_t b,
                          std::int64_t t, std::int64_t h);

enum class BlockVisibility { kNone, kPartial, kFull };

// Causal visibility of the (query block u, key block v) tile of one sequence (bottom-right aligned), where
// blocks are [u*block_q, (u+1)*block_q) clipped to the sequence. Non-causal: every in-range tile is kFull.
BlockVisibility block_visibility(std::int64_t u, std::int64_t v, std::int64_t block_q, std::int64_t block_k,
                                 std::int64_t seqlen_q, std::int64_t seqlen_k, bool causal);

// Number of key blocks row u may see (the causal block count of the row): v in [0, visible_key_blocks).
std::int64_t visible_key_blocks(std::int64_t u, std::int64_t block_q, std::int64_t block_k,
                                std::int64_t seqlen_q, std::int64_t seqlen_k, bool causal);

inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) {
  return (a + b - 1) / b;
}

}  // namespace sparsefill
