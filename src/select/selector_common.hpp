// Building blocks shared by the CPU selectors: loading one head of one sequence, pooling, block geometry,
// softmax over a candidate set, and the per-(sequence, query head) driver that fills a per-query-head mask.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "sparsefill/selector.hpp"

namespace sparsefill {

// Rows [0, length) of head `head` of sequence `b` as fp32 [length][head_dim].
std::vector<float> load_head_rows(const TensorView& t, const AttentionProblem& p, bool query_side,
                                  std::int64_t b, std::int64_t head);

// Block mean pooling [ceil(length / block)][dim], fp64. divide_by_count = false divides by `block` (zero
// padding dilutes a partial last block, as Prism, PBS, XAttention and mean pooling do); true divides by the
// tokens present (FlexPrefill).
std::vector<double> pool_blocks(const std::vector<float>& rows, std::int64_t length, std::int64_t dim,
                                std::int64_t block, bool divide_by_count = false);

double dot_product(const double* a, const double* b, std::int64_t n);
double dot_product(const float* a, const double* b, std::int64_t n);
double dot_product(const float* a, const float* b, std::int64_t n);

// Block geometry of one sequence under the block-level causal rule of algorithms.md §0.1: key block v is a
// candidate of query block u iff v <= u + (nk - nq) (every v < nk when not causal); the diagonal is u + nk -
// nq.
struct BlockGeometry {
  std::int64_t nq = 0, nk = 0, shift = 0;
  bool causal = true;
  BlockGeometry(std::int64_t seqlen_q, std::int64_t seqlen_k, std::int64_t block, bool is_causal);
  std::int64_t last_candidate(std::int64_t u) const;  // exclusive bound on v
  std::int64_t diagonal(std::int64_t u) const { return u + shift; }
  bool has_diagonal(std::int64_t u) const { return diagonal(u) >= 0 && diagonal(u) < nk; }
  std::vector<std::int32_t> candidates(std::int64_t u) const;
  // Adds block 0 (sink) and/or the diagonal block (when in range) to a sorted row.
  std::vector<std::int32_t> with_forced(std::int64_t u, std::vector<std::int32_t> blocks, bool sink,
                                        bool diagonal) const;
  // Drops blocks above the causal diagonal (block-causal tril); no-op when not causal.
  std::vector<std::int32_t> causal_only(std::int64_t u, std::vector<std::int32_t> blocks) const;
};

// Block-pooled keys of every (sequence, KV head): result[b][g] as from pool_blocks (divided by the block).
std::vector<std::vector<std::vector<double>>> pool_keys_per_kv_head(const TensorView& k,
                                                                    const AttentionProblem& p,
                                                                    std::int64_t block);

// The block indices 0 .. n-1.
std::vector<std::int32_t> block_range(std::int64_t n);

// probs[v] = softmax over `candidates` of logits[v]; 0 elsewhere. Returns false (all zero) for no candidates.
bool softmax_over(const double* logits, const std::vector<std::int32_t>& candidates, std::int64_t n,
                  double* probs);

// The block scores [geo.nq, geo.nk] of one head of a stride selector (RRAttention, XAttention): stride row i
// < rows gets its logits from row_logits(i, logits), which writes logits[j] for the key strides j < n it may
// attend and returns n (0: the row adds nothing); their softmax is added into block row i /
// strides_per_block, block v taking key strides [v, v + 1) * strides_per_block (of key_strides). Query blocks
// run in parallel (parallel_for), the rows of one block in order on one thread: the sums are those of one
// serial loop.
std::vector<double> stride_block_scores(const BlockGeometry& geo, std::int64_t rows, std::int64_t key_strides,
                                        std::int64_t strides_per_block,
                                        const std::function<std::int64_t(std::int64_t, double*)>& row_logits);

// T3 on block row u (§0.3) followed by the block-causal tril. The forced set is the diagonal, plus column 0
// when `column0_forced` (XAttention's chunk rule: current_index > 0); t3_clean always forces column 0 and the
// diagonal.
std::vector<std::int32_t> select_t3_row(const double* row, const BlockGeometry& geo, std::int64_t u,
                                        bool column0_forced, double tau, bool reference);

// Runs rows(b, h, mask) for every (sequence b, query head h) in parallel; `rows` calls mask.set_row(b, h, u,
// ...) for its own rows only. Returns the per-query-head mask (heads = heads_q).
BlockMask build_per_head_mask(const AttentionProblem& p, std::int64_t block,
                              const std::function<void(std::int64_t, std::int64_t, BlockMask&)>& rows);

// Lays each (sequence b, query head h)'s block scores, [nq, nk] of its own block geometry (head_scores(b, h),
// computed in parallel), into [batch, heads_q, nq, nk] of the longest sequences' blocks, zeros elsewhere.
std::vector<double> gather_block_scores(
    const AttentionProblem& p, std::int64_t block,
    const std::function<std::vector<double>(std::int64_t, std::int64_t)>& head_scores);

// One (sequence, query head)'s lines for RankedLines (selector.hpp): vertical and slash scores (at most
// `width` each) and how many of each the top-k keeps.
struct HeadRankedLines {
  std::vector<double> vertical, slash;
  std::int64_t keep_vertical = 0, keep_slash = 0;
};

// Lays each (sequence b, query head h)'s lines (head_lines(b, h), computed in parallel) into a RankedLines of
// `width` lines a kind, zeros past a head's own.
RankedLines gather_ranked_lines(const AttentionProblem& p, std::int64_t width,
                                const std::function<HeadRankedLines(std::int64_t, std::int64_t)>& head_lines);

}  // namespace sparsefill
