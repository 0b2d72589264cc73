// The evaluation pipeline (design note): one dense pass yields the reference output, its LSE and the true
// block mass; then per method: selector -> block-sparse (or permuted) attention with LSE -> metrics, each
// stage timed. Recall is exp(lse_sparse - lse_dense) per row, exact for permuted masks too.
#include "sparsefill/evaluate.hpp"

#include <chrono>

#include "sparsefill/error.hpp"
#include "sparsefill/gpu_attention.hpp"

namespace sparsefill {
namespace {

template <typename F>
double timed(F&& body) {
  const auto start = std::chrono::steady_clock::now();
  body();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

ReferenceOptions reference_options(const EvaluationOptions& options, const char* stage) {
  ReferenceOptions ref;
  ref.attention.causal = options.causal;
  ref.accumulation = options.accumulation;
  if (options.progress) ref.progress = [progress = options.progress, stage](double f) { progress(stage, f); };
  return ref;
}

std::vector<std::int64_t> shape_of(const TensorView& t) {
  return {t.shape.begin(), t.shape.begin() + t.rank};
}

}  // namespace

DenseReference compute_dense_reference(const TensorView& q, const TensorView& k, const TensorView& v,
                                       const EvaluationOptions& options) {
  require(options.block_size == 64 || options.block_size == 128, "block_size", "must be 64 or 128");
  DenseReference d;
  d.problem = describe_attention(q, k, v);
  const AttentionProblem& p = d.problem;
  d.out = HostTensor(DType::kFP32, shape_of(q));
  d.lse = HostTensor(DType::kFP32, {p.batch, p.heads_q, p.max_seqlen_q()});
  d.block_mass = HostTensor(DType::kFP32, {p.batch, p.heads_q, ceil_div(p.max_seqlen_q(), options.block_size),
                                           ceil_div(p.max_seqlen_k(), options.block_size)});
  d.seconds = timed([&] {
    reference_attention(q, k, v, {}, nullptr, reference_options(options, "dense attention"),
                        {d.out.view(), d.lse.view(), d.block_mass.view(), options.block_size});
  });
  d.oracle_density95 = blocks_needed_fraction(d.block_mass.view(), p, options.causal, 0.95);
  return d;
}

Evaluation evaluate_selector(const Selector& selector, const TensorView& q, const TensorView& k,
                             const TensorView& v, const DenseReference& dense,
                             const EvaluationOptions& options) {
  const AttentionProblem& p = dense.problem;
  require(dense.block_mass.shape().size() == 4 &&
              dense.block_mass.shape()[2] == ceil_div(p.max_seqlen_q(), options.block_size),
          "dense", "was computed with another block size");
  Evaluation e;
  e.sparse_out = HostTensor(DType::kFP32, shape_of(q));
  e.sparse_lse = HostTensor(DType::kFP32, {p.batch, p.heads_q, p.max_seqlen_q()});
  SelectorInputs in;
  in.q = q;
  in.k = k;
  in.v = v;
  in.causal = options.causal;
  in.block_size = options.block_size;
  in.rope_layout = options.rope_layout;
  e.times.push_back({"select (" + selector.name() + ")", timed([&] { e.selection = selector.select(in); })});
  const char* stage = options.device == EvaluationOptions::Device::kCuda
                          ? "sparse attention (GPU, with copies)"
                          : "sparse attention";
  e.times.push_back(
      {stage, timed([&] {
         const ReferenceOptions ref = reference_options(options, "sparse attention");
         const ReferenceOutputs outputs{e.sparse_out.view(), e.sparse_lse.view(), {}, 0};
         if (options.device == EvaluationOptions::Device::kCuda) {
           gpu_block_sparse_attention(q, k, v, e.selection.mask, options.causal, outputs.out, outputs.lse,
                                      e.selection.key_order);
         } else if (e.selection.key_order.empty()) {
           reference_attention(q, k, v, {}, &e.selection.mask, ref, outputs);
         } else {
           reference_permuted_attention(q, k, v, {}, e.selection.mask, e.selection.key_order, ref, outputs);
         }
       })});
  e.times.push_back({"metrics", timed([&] {
                       e.density = mask_density(e.selection.mask, p, options.causal);
                       e.recall =
                           recall_from_lse(e.sparse_lse.view(), dense.lse.view(), p, options.block_size);
                       e.error = output_error(e.sparse_out.view(), dense.out.view(), p);
                     })});
  return e;
}

}  // namespace sparsefill
