// The plainest possible fp64 attention, written independently of the library's reference: an explicit
// [seqlen_q x seqlen_k] allow-matrix per (sequence, query head) built from the block map and the causal rule.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "sparsefill/tensor.hpp"

namespace sparsefill::testing {

struct NaiveSequence {
  std::int64_t start_q = 0, start_k = 0, seqlen_q = 0, seqlen_k = 0;
};

struct NaiveResult {
  std::vector<double> out;  // same element order as q (contiguous)
  std::vector<double> lse;  // [batch, heads_q, max_seqlen_q], -inf where no key is visible
};

// allowed(b, h, i, j): may query i of sequence b, head h attend key j (causality included by the caller).
NaiveResult naive_attention(
    const HostTensor& q, const HostTensor& k, const HostTensor& v, bool varlen,
    const std::vector<NaiveSequence>& sequences, double scale,
    const std::function<bool(std::int64_t, std::int64_t, std::int64_t, std::int64_t)>& allowed);

// q/k/v contiguous, fixed ([B, L, H, D]) or varlen ([T, H, D]) per `varlen`. block_map: optional dense bool
// [B, Hm, nQb, nKb] map with `mask_heads` heads and square blocks `block` (empty vector = dense).
NaiveResult naive_attention(const HostTensor& q, const HostTensor& k, const HostTensor& v, bool varlen,
                            const std::vector<NaiveSequence>& sequences, bool causal, double scale,
                            const std::vector<std::uint8_t>& block_map, std::int64_t mask_heads,
                            std::int64_t block, std::int64_t num_q_blocks, std::int64_t num_k_blocks);

}  // namespace sparsefill::testing
