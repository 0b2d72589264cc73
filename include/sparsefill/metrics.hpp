// Accuracy metrics of a block mask against dense attention.
//
// Recall of a (head, query block): the share of that block row's true attention mass (from the dense softmax,
// see ReferenceOutputs::block_mass) that lies in the selected key blocks. Output error: ||O - O_dense|| /
// ||O_dense|| per query head and overall.
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

// block_mass: [batch, heads_q, nQb, nKb] (fp32/fp64) from a dense reference call with the mask's block size.
// Returns recall per (query head, query block) row with any visible key, and its summaries.
struct RecallReport {
  std::vector<std::vector<double>> per_head_rows;  // [heads_q][rows over batch]
  std::vector<double> head_min;                    // [heads_q]
  std::vector<double> head_mean;                   // [heads_q]
};
RecallReport mask_recall(const TensorView& block_mass, const BlockMask& mask, const AttentionProblem& problem,
                         bool causal);

// Relative L2 error per query head and overall; `out` and `reference` share q's layout (any floating dtype).
struct OutputError {
  std::vector<double> per_head;
  double overall = 0.0;
};
OutputError output_error(const TensorView& out, const TensorView& reference, const AttentionProblem& problem);

// Per query head: the blocks needed to cover `mass` of every row (greedy, largest first) over the head's visible
// blocks, i.e. the density of the oracle top-p mask ("blocks needed for 95% of the mass" calibrates scenes).
std::vector<double> blocks_needed_fraction(const TensorView& block_mass, const AttentionProblem& problem,
                                           bool causal, double mass);

}  // namespace sparsefill
