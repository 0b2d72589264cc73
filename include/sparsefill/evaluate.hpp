// The main job: run a selector and its block-sparse attention on q/k/v, and measure against dense attention
// how close the result is (density, recall of attention mass, output error) and how long each stage took. The
// dense reference is computed once per input and shared by every method evaluated on it.
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
  // Where the sparse attention runs: kCpu (the reference) or kCuda (the GPU kernels; bf16/fp16, head_dim
  // 64/128; PBS's permuted masks on the generic kernel). The dense reference always runs on the CPU.
  enum class Device { kCpu, kCuda } device = Device::kCpu;
  // Called with (stage name, finished fraction of that stage) while long stages run.
  std::function<void(const std::string&, double)> progress;
};

struct StageTime {
  std::string stage;
  double seconds = 0.0;
};

// Dense attention of one input: output, LSE, the true block attention mass and the oracle density at 95%.
struct DenseReference {
  AttentionProblem problem;
  HostTensor out;         // fp32, q's shape
  HostTensor lse;         // fp32 [batch, heads_q, max_seqlen_q]
  HostTensor block_mass;  // fp32 [batch, heads_q, nQb, nKb]
  std::vector<double>
      oracle_density95;  // [heads_q]: blocks needed for 95% of each row's mass / visible blocks
  double seconds = 0.0;
};

// q/k/v: fixed-length FlashAttention layout (see attention_problem.hpp). CPU reference.
DenseReference compute_dense_reference(const TensorView& q, const TensorView& k, const TensorView& v,
                                       const EvaluationOptions& options);

struct Evaluation {
  Selection selection;
  MaskDensity density;
  RecallReport recall;
  OutputError error;
  HostTensor sparse_out;         // fp32, q's shape
  HostTensor sparse_lse;         // fp32 [batch, heads_q, max_seqlen_q]
  std::vector<StageTime> times;  // select, sparse attention, metrics
};

// `dense` must come from compute_dense_reference on the same q/k/v with the same causal flag and block size.
Evaluation evaluate_selector(const Selector& selector, const TensorView& q, const TensorView& k,
                             const TensorView& v, const DenseReference& dense,
                             const EvaluationOptions& options);

}  // namespace sparsefill
