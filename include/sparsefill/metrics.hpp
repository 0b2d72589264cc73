// Accuracy metrics of a sparse attention pass against dense attention: recall of attention mass per (head,
// query block), output error ||O - O_dense|| / ||O_dense|| per query head, and the oracle density of the
// input.
#pragma once
#include <cstdint>
#include <vector>

#include "sparsefill/attention_problem.hpp"
#include "sparsefill/block_mask.hpp"

namespace sparsefill {

struct Summary {
  double min = 0, mean = 0, p10 = 0, p50 = 0, p90 = 0, max = 0;
  std::int64_t count = 0;
};
Summary summarize(std::vector<double> values);  // empty input -> all zero, count 0

// Recall per (query head, query block): the mean over the block's rows of the attention mass the sparse pass
// kept, exp(lse_sparse - lse_dense) (the sparse normaliser over the dense one). Exact for any mask, permuted
// (PBS) or not. lse_*: [batch, heads_q, max_seqlen_q] fp32/fp64 from reference_attention /
// reference_permuted_attention on the same q/k. Rows with no visible key are skipped; a row the sparse pass
// left empty has recall 0.
struct RecallReport {
  std::vector<std::vector<double>> per_head_rows;  // [heads_q][query blocks over the batch]
  std::vector<double> head_min;                    // [heads_q]
  std::vector<double> head_mean;                   // [heads_q]
};
RecallReport recall_from_lse(const TensorView& lse_sparse, const TensorView& lse_dense,
                             const AttentionProblem& problem, std::int64_t block);

// Relative L2 error per query head and overall; `out` and `reference` share q's layout (any floating dtype).
struct OutputError {
  std::vector<double> per_head;
  double overall = 0.0;
};
OutputError output_error(const TensorView& out, const TensorView& reference, const AttentionProblem& problem);

// Per query head: the blocks needed to cover `mass` of every row (greedy, largest first) over the head's
// visible blocks, i.e. the density of the oracle top-p mask ("blocks needed for 95% of the mass" calibrates
// scenes).
std::vector<double> blocks_needed_fraction(const TensorView& block_mass, const AttentionProblem& problem,
                                           bool causal, double mass);

}  // namespace sparsefill
