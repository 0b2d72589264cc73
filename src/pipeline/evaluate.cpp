// The evaluation pipeline (design note): selector -> block-sparse attention -> dense attention with per-block
// mass -> metrics, each stage timed separately. The dense pass yields both the reference output and the true
// block mass, so recall costs no extra pass.
#include "sparsefill/evaluate.hpp"

#include <chrono>

#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

class StageClock {
 public:
  explicit StageClock(std::vector<StageTime>& times) : times_(times) {}
  template <typename F>
  void run(const std::string& stage, F&& body) {
    const auto start = std::chrono::steady_clock::now();
    body();
    times_.push_back({stage, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()});
  }

 private:
  std::vector<StageTime>& times_;
};

}  // namespace

Evaluation evaluate_selector(const Selector& selector, const TensorView& q, const TensorView& k, const TensorView& v,
                             const EvaluationOptions& options) {
  Evaluation e;
  e.problem = describe_attention(q, k, v);
  const AttentionProblem& p = e.problem;
  require(options.block_size == 64 || options.block_size == 128, "block_size", "must be 64 or 128");
  std::vector<std::int64_t> out_shape(q.shape.begin(), q.shape.begin() + q.rank);
  e.sparse_out = HostTensor(DType::kFP32, out_shape);
  e.dense_out = HostTensor(DType::kFP32, out_shape);
  e.block_mass = HostTensor(DType::kFP32, {p.batch, p.heads_q, ceil_div(p.max_seqlen_q(), options.block_size),
                                           ceil_div(p.max_seqlen_k(), options.block_size)});
  StageClock clock(e.times);

  clock.run("select (" + selector.name() + ")", [&] {
    SelectorInputs in;
    in.q = q;
    in.k = k;
    in.v = v;
    in.causal = options.causal;
    in.block_size = options.block_size;
    in.rope_layout = options.rope_layout;
    e.selection = selector.select(in);
  });
  ReferenceOptions ref;
  ref.attention.causal = options.causal;
  ref.accumulation = options.accumulation;
  clock.run("sparse attention", [&] {
    if (options.progress) ref.progress = [&](double f) { options.progress("sparse attention", f); };
    ReferenceOutputs outputs;
    outputs.out = e.sparse_out.view();
    reference_attention(q, k, v, {}, &e.selection.mask, ref, outputs);
  });
  clock.run("dense attention + block mass", [&] {
    if (options.progress) ref.progress = [&](double f) { options.progress("dense attention", f); };
    ReferenceOutputs outputs;
    outputs.out = e.dense_out.view();
    outputs.block_mass = e.block_mass.view();
    outputs.mass_block = options.block_size;
    reference_attention(q, k, v, {}, nullptr, ref, outputs);
  });
  clock.run("metrics", [&] {
    e.density = mask_density(e.selection.mask, p, options.causal);
    const TensorView mass = e.block_mass.view();
    e.recall = mask_recall(mass, e.selection.mask, p, options.causal);
    e.oracle_density95 = blocks_needed_fraction(mass, p, options.causal, 0.95);
    e.error = output_error(e.sparse_out.view(), e.dense_out.view(), p);
  });
  return e;
}

}  // namespace sparsefill
