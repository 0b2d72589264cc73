#include "run_report.hpp"

#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "sparsefill/io.hpp"

namespace sparsefill::cli {
namespace {

std::string seconds(double s) {
  return s < 1.0 ? fmt::format("{:.1f} ms", s * 1e3) : fmt::format("{:.2f} s", s);
}

}  // namespace

void print_run_report(const RunDescription& run, const DenseReference& dense, const Evaluation& e,
                      bool per_head) {
  const AttentionProblem& p = dense.problem;
  fmt::print("sparsefill run: {}\n", run.input);
  fmt::print("  shape {} x {} q tokens, {} k tokens, {}/{} heads, head_dim {}, {}, {}, block {}, device {}\n",
             p.batch, p.max_seqlen_q(), p.max_seqlen_k(), p.heads_q, p.heads_kv, p.head_dim, run.dtype,
             run.causal ? "causal (bottom-right)" : "non-causal", run.block_size, run.device);
  const Summary recall_min = summarize(e.recall.head_min), recall_mean = summarize(e.recall.head_mean);
  const Summary density = summarize(e.density.per_query_head), error = summarize(e.error.per_head);
  fmt::print("\n{:<12} {:>17} {:>8} {:>11} {:>12} {:>13} {:>12}\n", "method", "kept blocks", "density",
             "recall min", "recall mean", "out rel err", "err max head");
  fmt::print("{:<12} {:>17} {:>8.4f} {:>11.4f} {:>12.4f} {:>13.3e} {:>12.3e}\n", run.method,
             fmt::format("{}/{}", e.density.selected_blocks, e.density.visible_blocks), e.density.overall,
             recall_min.min, recall_mean.mean, e.error.overall, error.max);
  fmt::print(
      "  per-head density min/median/max {:.3f}/{:.3f}/{:.3f}; recall (head mean) p10/median {:.4f}/{:.4f}\n",
      density.min, density.p50, density.max, recall_mean.p10, recall_mean.p50);
  const Summary oracle = summarize(dense.oracle_density95);
  fmt::print(
      "  input: blocks needed for 95% of the attention mass (oracle density) min/median/max "
      "{:.3f}/{:.3f}/{:.3f}\n",
      oracle.min, oracle.p50, oracle.max);
  if (per_head) {
    fmt::print("\n{:>4} {:<9} {:>8} {:>11} {:>12} {:>12} {:>10}\n", "head", "kind", "density", "recall min",
               "recall mean", "out rel err", "oracle95");
    for (std::int64_t h = 0; h < p.heads_q; ++h) {
      const std::string kind =
          run.heads ? head_kind_name((*run.heads)[h].kind) + ((*run.heads)[h].retrieval ? "+r" : "") : "-";
      fmt::print("{:>4} {:<9} {:>8.4f} {:>11.4f} {:>12.4f} {:>12.3e} {:>10.3f}\n", h, kind,
                 e.density.per_query_head[h], e.recall.head_min[h], e.recall.head_mean[h],
                 e.error.per_head[h], dense.oracle_density95[h]);
    }
  }
  fmt::print("\n{:<30} {:>10}\n", "stage", "time");
  double total = 0;
  std::vector<StageTime> stages = run.setup_times;
  stages.insert(stages.end(), e.times.begin(), e.times.end());
  stages.push_back({"dense attention (reference)", dense.seconds});
  for (const auto& t : stages) {
    fmt::print("{:<30} {:>10}\n", t.stage, seconds(t.seconds));
    total += t.seconds;
  }
  fmt::print("{:<30} {:>10}\n", "total", seconds(total));
}

void write_run_json(const std::string& path, const RunDescription& run, const DenseReference& dense,
                    const Evaluation& e) {
  nlohmann::json j;
  j["input"] = run.input;
  j["method"] = run.method;
  j["dtype"] = run.dtype;
  j["device"] = run.device;
  j["causal"] = run.causal;
  j["block_size"] = run.block_size;
  j["batch"] = dense.problem.batch;
  j["seqlen_q"] = dense.problem.max_seqlen_q();
  j["seqlen_k"] = dense.problem.max_seqlen_k();
  j["heads_q"] = dense.problem.heads_q;
  j["heads_kv"] = dense.problem.heads_kv;
  j["head_dim"] = dense.problem.head_dim;
  j["density"] = {{"overall", e.density.overall},
                  {"selected_blocks", e.density.selected_blocks},
                  {"visible_blocks", e.density.visible_blocks},
                  {"per_head", e.density.per_query_head}};
  j["recall"] = {{"min", summarize(e.recall.head_min).min},
                 {"mean", summarize(e.recall.head_mean).mean},
                 {"per_head_min", e.recall.head_min},
                 {"per_head_mean", e.recall.head_mean}};
  j["oracle_density95"] = dense.oracle_density95;
  j["output_error"] = {{"overall", e.error.overall}, {"per_head", e.error.per_head}};
  for (const auto& list : {run.setup_times, e.times}) {
    for (const auto& t : list) j["seconds"][t.stage] = t.seconds;
  }
  j["seconds"]["dense attention (reference)"] = dense.seconds;
  if (run.heads) {
    for (const auto& r : *run.heads) {
      j["heads"].push_back({{"kind", head_kind_name(r.kind)},
                            {"retrieval", r.retrieval},
                            {"sink_mass_target", r.sink_mass_target},
                            {"sink_logit", r.sink_logit},
                            {"window_pairs", r.window_pairs},
                            {"local_logit", r.local_logit},
                            {"slash_offsets", r.slash_offsets},
                            {"slash_logits", r.slash_logits},
                            {"vertical_logit", r.vertical_logit},
                            {"topic_logit", r.topic_logit},
                            {"needle_logit", r.needle_logit},
                            {"noise", r.noise},
                            {"temperature", r.temperature},
                            {"prior_layer", r.prior_layer},
                            {"prior_head", r.prior_head}});
    }
  }
  write_text_file(path, j.dump(2) + "\n");
}

}  // namespace sparsefill::cli
