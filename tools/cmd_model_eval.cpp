// `sparsefill model-eval`: each method (and threshold) inside the real model: perplexity of the last half of a
// long text against dense (delta PPL), the masks' mean density and per-layer recall, and passkey retrieval
// over lengths x depths. Prints a table, writes JSON, and plots delta PPL and passkey accuracy against density.
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.hpp"
#include "output_paths.hpp"
#include "selector_flags.hpp"
#include "sparsefill/error.hpp"
#include "sparsefill/io.hpp"
#include "sparsefill/model_eval.hpp"
#include "sparsefill/picture.hpp"

namespace sparsefill::cli {
namespace {

struct ModelEvalFlags {
  std::string model = ".deps/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::vector<std::string> texts = {"/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0",
                                    "/usr/share/common-licenses/MPL-2.0"};
  std::vector<std::string> methods = {"dense", "prism", "rr", "pbs", "xattn", "flexprefill", "minference", "meanpool"};
  std::vector<std::string> sweeps;
  std::int64_t ppl_tokens = 8192, block_size = 128, trials = 1;
  std::vector<std::int64_t> lengths = {2000, 4000, 8000};
  std::vector<double> depths = {0.1, 0.5, 0.9};
  std::uint64_t seed = 0;
  bool skip_passkey = false;
  std::string json_out, png_out;
  SelectorSettings settings;
};

struct PasskeyCell {
  std::int64_t length;
  double depth;
  std::uint64_t trial;
  std::string key, predicted;
  bool retrieved;
};

struct MethodResult {
  std::string method;
  double threshold = NAN;  // NaN: the method's default (or none)
  PerplexityResult ppl;
  std::vector<PasskeyCell> passkey;
  double passkey_seconds = 0;
  double accuracy() const {
    if (passkey.empty()) return NAN;
    double hits = 0;
    for (const auto& c : passkey) hits += c.retrieved ? 1 : 0;
    return hits / static_cast<double>(passkey.size());
  }
};

std::string read_texts(const std::vector<std::string>& paths) {
  std::string text;
  for (const std::string& path : paths) {
    std::ifstream in(path, std::ios::binary);
    require(static_cast<bool>(in), path, "cannot open the text file");
    std::ostringstream all;
    all << in.rdbuf();
    if (!text.empty()) text += "\n\n";
    text += all.str();
  }
  return text;
}

std::string threshold_text(double t) {
  return std::isnan(t) ? std::string("default") : fmt::format("{:.2f}", t);
}

MethodResult evaluate_method(const ModelEvalFlags& f, const LlamaModel& model, const BpeTokenizer& tokenizer,
                             const std::vector<std::int32_t>& text_tokens, const std::string& method,
                             double threshold) {
  SelectorSettings settings = f.settings;
  if (!std::isnan(threshold)) settings.set_threshold(method, threshold);
  const std::unique_ptr<Selector> selector = method == "dense" ? nullptr : make_selector(method, settings);
  const LlamaModel::AttentionChoice choice{selector.get(), f.block_size};
  MethodResult r{method, threshold, measure_perplexity(model, text_tokens, choice), {}, 0};
  fmt::print(stderr, "{:<12} {:>7}: ppl {:.4f} density {:.3f} recall {:.4f} ({:.0f} s)\n", method,
             threshold_text(threshold), r.ppl.perplexity, r.ppl.density, r.ppl.recall, r.ppl.seconds);
  if (f.skip_passkey) return r;
  const auto start = std::chrono::steady_clock::now();
  for (std::int64_t length : f.lengths) {
    for (double depth : f.depths) {
      for (std::uint64_t trial = 0; trial < static_cast<std::uint64_t>(f.trials); ++trial) {
        const PasskeyTask task = make_passkey_task(tokenizer, length, depth, f.seed + trial);
        const PasskeyResult p = run_passkey(model, tokenizer, task, choice);
        r.passkey.push_back({length, depth, trial, task.key, p.predicted, p.retrieved});
        fmt::print(stderr, "  passkey {} tokens, depth {:.2f}: key {} predicted '{}' {}\n", task.prompt.size(),
                   depth, task.key, p.predicted, p.retrieved ? "ok" : "MISSED");
      }
    }
  }
  r.passkey_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

nlohmann::json to_json(const MethodResult& r, double dense_ppl) {
  nlohmann::json j{{"method", r.method},
                   {"threshold", std::isnan(r.threshold) ? nlohmann::json() : nlohmann::json(r.threshold)},
                   {"perplexity", r.ppl.perplexity},
                   {"delta_perplexity", r.ppl.perplexity - dense_ppl},
                   {"density", r.ppl.density},
                   {"recall", r.ppl.recall},
                   {"ppl_seconds", r.ppl.seconds},
                   {"passkey_seconds", r.passkey_seconds}};
  for (const auto& l : r.ppl.layers)
    j["layers"].push_back({{"layer", l.layer}, {"density", l.density}, {"recall", l.recall_mean}});
  for (const auto& c : r.passkey)
    j["passkey"].push_back({{"length", c.length},
                            {"depth", c.depth},
                            {"trial", c.trial},
                            {"key", c.key},
                            {"predicted", c.predicted},
                            {"retrieved", c.retrieved}});
  if (!r.passkey.empty()) j["passkey_accuracy"] = r.accuracy();
  return j;
}

std::vector<PlotPanel> plot_panels(const std::vector<MethodResult>& results, double dense_ppl, bool passkey) {
  PlotPanel ppl{"perplexity of the text's last half", "density (selected / causal blocks)",
                "delta PPL vs dense", 0, 1, 0, 0.01, {}};
  PlotPanel key{"passkey retrieval", "density (selected / causal blocks)", "accuracy", 0, 1, 0, 1, {}};
  std::vector<std::string> methods;
  for (const auto& r : results)
    if (std::find(methods.begin(), methods.end(), r.method) == methods.end()) methods.push_back(r.method);
  for (const std::string& m : methods) {
    PlotSeries a{m, {}, {}}, b{m, {}, {}};
    for (const auto& r : results) {
      if (r.method != m) continue;
      a.x.push_back(r.ppl.density);
      a.y.push_back(r.ppl.perplexity - dense_ppl);
      ppl.y_min = std::min(ppl.y_min, a.y.back());
      ppl.y_max = std::max(ppl.y_max, a.y.back() * 1.1);
      if (passkey) {
        b.x.push_back(r.ppl.density);
        b.y.push_back(r.accuracy());
      }
    }
    ppl.series.push_back(a);
    key.series.push_back(b);
  }
  std::vector<PlotPanel> panels{ppl};
  if (passkey) panels.push_back(key);
  return panels;
}

int run(const ModelEvalFlags& f, const CLI::App& cmd) {
  require_selector_flags_of(cmd, f.methods);
  const auto sweeps = parse_sweeps(f.sweeps, f.methods, {});
  for (const std::string& m : f.methods)
    if (m != "dense") make_selector(m, f.settings);  // validates names and settings before any work
  require(f.methods.front() == "dense", "--methods", "must start with dense (the baseline of delta PPL)");
  const GgufFile file = GgufFile::read(f.model);
  const BpeTokenizer tokenizer = BpeTokenizer::from_gguf(file);
  const LlamaModel model = LlamaModel::load(file);
  std::vector<std::int32_t> tokens = tokenizer.encode(read_texts(f.texts));
  require(static_cast<std::int64_t>(tokens.size()) >= f.ppl_tokens, "--ppl-tokens",
          fmt::format("the text has only {} tokens", tokens.size()));
  tokens.resize(static_cast<std::size_t>(f.ppl_tokens));
  fmt::print(stderr, "model {} ({} layers, {}/{} heads, head_dim {}); text {} tokens, block {}\n", f.model,
             model.config().layers, model.config().heads_q, model.config().heads_kv, model.config().head_dim,
             tokens.size(), f.block_size);
  std::vector<MethodResult> results;
  for (const std::string& method : f.methods) {
    const auto it = sweeps.find(method);
    for (double t : it == sweeps.end() ? std::vector<double>{NAN} : it->second)
      results.push_back(evaluate_method(f, model, tokenizer, tokens, method, t));
  }
  const double dense_ppl = results.front().ppl.perplexity;
  fmt::print("\nSmolLM2-135M, perplexity of the last {} of {} tokens; passkey over lengths x depths x trials\n",
             results.front().ppl.scored, tokens.size());
  fmt::print("{:<12} {:>9} {:>8} {:>8} {:>9} {:>9} {:>9} {:>8}\n", "method", "threshold", "density", "recall",
             "PPL", "dPPL", "passkey", "ppl s");
  for (const auto& r : results) {
    const std::int64_t hits = static_cast<std::int64_t>(std::llround(r.accuracy() * static_cast<double>(r.passkey.size())));
    fmt::print("{:<12} {:>9} {:>8.4f} {:>8.4f} {:>9.4f} {:>+9.4f} {:>9} {:>8.0f}\n", r.method, threshold_text(r.threshold),
               r.ppl.density, r.ppl.recall, r.ppl.perplexity, r.ppl.perplexity - dense_ppl,
               r.passkey.empty() ? std::string("-") : fmt::format("{}/{}", hits, r.passkey.size()), r.ppl.seconds);
  }
  if (!f.json_out.empty()) {
    nlohmann::json j{{"model", f.model},       {"texts", f.texts},       {"tokens", tokens.size()},
                     {"block_size", f.block_size}, {"passkey_lengths", f.lengths}, {"passkey_depths", f.depths},
                     {"passkey_trials", f.trials}, {"seed", f.seed}};
    for (const auto& r : results) j["results"].push_back(to_json(r, dense_ppl));
    write_text_file(f.json_out, j.dump(2) + "\n");
    fmt::print("wrote {}\n", f.json_out);
  }
  if (!f.png_out.empty()) {
    write_line_plot_png(f.png_out, plot_panels(results, dense_ppl, !f.skip_passkey));
    fmt::print("wrote {}\n", f.png_out);
  }
  return 0;
}

}  // namespace

std::function<int()> add_model_eval_command(CLI::App& app) {
  auto flags = std::make_shared<ModelEvalFlags>();
  ModelEvalFlags& f = *flags;
  CLI::App* cmd = app.add_subcommand(
      "model-eval", "Selectors inside the real model: delta perplexity, density, recall, passkey retrieval");
  cmd->add_option("--model", f.model, "GGUF model file (scripts/fetch_model.sh fetches SmolLM2-135M)")
      ->capture_default_str();
  cmd->add_option("--text", f.texts, "Text files, concatenated (default: Debian's licence texts)")
      ->capture_default_str();
  std::vector<std::string> names = selector_names();
  cmd->add_option("--methods", f.methods, "Methods, dense first")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::IsMember(names));
  cmd->add_option("--sweep", f.sweeps, "Thresholds of one method, METHOD=T1,T2,... (default: its default)");
  cmd->add_option("--ppl-tokens", f.ppl_tokens, "Tokens of text (perplexity of the last half)")
      ->capture_default_str()
      ->check(CLI::Range(8, 1 << 20));
  cmd->add_option("--passkey-lengths", f.lengths, "Passkey prompt lengths in tokens")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::Range(64, 1 << 20));
  cmd->add_option("--passkey-depths", f.depths, "Needle depths (fraction of the filler)")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--passkey-trials", f.trials, "Keys per (length, depth)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  cmd->add_option("--seed", f.seed, "Passkey seed")->capture_default_str();
  cmd->add_flag("--skip-passkey", f.skip_passkey, "Perplexity only");
  cmd->add_option("--block-size", f.block_size, "Block size")
      ->capture_default_str()
      ->check(CLI::IsMember({64, 128}));
  cmd->add_option("--json", f.json_out, "Write every result (per-layer stats, passkey cells) to FILE.json")
      ->check(output_file());
  cmd->add_option("--png", f.png_out, "Plot delta PPL and passkey accuracy against density to FILE.png")
      ->check(output_file());
  add_selector_flags(cmd, f.settings);
  return [flags, cmd] { return run(*flags, *cmd); };
}

}  // namespace sparsefill::cli
