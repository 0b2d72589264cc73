// The main job: run one selector and its block-sparse attention on q/k/v, run dense attention, and measure how
// close the sparse result is (density, recall of attention mass, output error) and how long each stage took.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "sparsefill/block_mask.hpp"
#include "sparsefill/metrics.hpp"
#include "sparsefill/reference_attention.hpp"
#include "sparsefill/selector.hpp"

namespace sparsefill {

struct EvaluationOptions {
  bool causal = true;
  std::int64_t block_size = kDefaultBlockSize;
  RopeLayout rope_layout = RopeLayout::kRotateHalf;
  Accumulation accumulation = Accumulation::kFP32;
  // Called with (stage name, finished fraction of that stage) while long stages run.
  std::function<void(const std::string&, double)> progress;
};

struct StageTime {
  std::string stage;
  double seconds = 0.0;
};

struct Evaluation {
  AttentionProblem problem;
  Selection selection;
  MaskDensity density;
  RecallReport recall;
  OutputError error;
  std::vector<double> oracle_density95;  // [heads_q]: blocks needed for 95% of each row's mass / visible
  HostTensor sparse_out;  // fp32, q's shape
  HostTensor dense_out;   // fp32, q's shape
  HostTensor block_mass;  // fp32 [batch, heads_q, nQb, nKb]: true attention mass per block
  std::vector<StageTime> times;  // select, sparse attention, dense attention + mass, metrics
};

// q/k/v: fixed-length FlashAttention layout (see attention_problem.hpp). Runs on the CPU reference.
Evaluation evaluate_selector(const Selector& selector, const TensorView& q, const TensorView& k, const TensorView& v,
                             const EvaluationOptions& options);

}  // namespace sparsefill
