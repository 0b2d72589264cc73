// `sparsefill eval`: methods x thresholds over scenes x seeds. Prints a table per scene (means over seeds),
// writes every point as JSON and draws recall-versus-density curves, one per method, one panel per scene.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "output_paths.hpp"
#include "selector_flags.hpp"
#include "sparsefill/error.hpp"
#include "sparsefill/evaluate.hpp"
#include "sparsefill/io.hpp"
#include "sparsefill/picture.hpp"
#include "sparsefill/scene.hpp"

namespace sparsefill::cli {
namespace {

const std::map<std::string, std::vector<double>>& default_thresholds() {
  static const std::map<std::string, std::vector<double>> t = {
      {"prism", {0.85, 0.9, 0.95, 0.98}}, {"rr", {0.85, 0.9, 0.95, 0.98}},    {"pbs", {0.8, 0.9, 0.95}},
      {"xattn", {0.8, 0.9, 0.95}},        {"flexprefill", {0.85, 0.9, 0.95}}, {"meanpool", {0.8, 0.9, 0.95}},
      {"oracle", {0.8, 0.9, 0.95, 0.98}}};
  return t;
}

struct EvalFlags {
  std::vector<std::string> methods = {"prism",       "rr",         "pbs",      "xattn",
                                      "flexprefill", "minference", "meanpool", "oracle"};
  std::vector<std::string> scenes = {"llama31-like", "slash-stress"};
  std::vector<std::uint64_t> seeds = {0, 1};
  std::vector<std::string> sweeps;
  std::int64_t len = 4096, heads_q = 0, heads_kv = 0, head_dim = 0, block_size = 128;
  std::string json_out, png_out;
  SelectorSettings settings;
};

struct Point {
  std::string scene, method;
  std::uint64_t seed = 0;
  double threshold = NAN, density = 0, recall_min = 0, recall_mean = 0, error = 0, select_seconds = 0;
};

// Means over seeds of the points of one (scene, method, threshold).
std::vector<Point> average_over_seeds(const std::vector<Point>& points) {
  std::vector<Point> out;
  for (const Point& p : points) {
    auto it = std::find_if(out.begin(), out.end(), [&](const Point& o) {
      return o.scene == p.scene && o.method == p.method &&
             (o.threshold == p.threshold || (std::isnan(o.threshold) && std::isnan(p.threshold)));
    });
    if (it == out.end()) {
      out.push_back(p);
      out.back().seed = 1;  // reused as the count
      continue;
    }
    const double n = static_cast<double>(it->seed);
    auto mean = [&](double& acc, double value) { acc = (acc * n + value) / (n + 1); };
    mean(it->density, p.density);
    it->recall_min = std::min(it->recall_min, p.recall_min);
    mean(it->recall_mean, p.recall_mean);
    mean(it->error, p.error);
    mean(it->select_seconds, p.select_seconds);
    it->seed += 1;
  }
  return out;
}

int run(EvalFlags& f, const CLI::App& cmd) {
  require_selector_flags_of(cmd, f.methods);
  const auto thresholds = parse_sweeps(f.sweeps, f.methods, default_thresholds());
  for (const auto& m : f.methods)
    make_selector(m, f.settings);  // validates names and settings before any work
  EvaluationOptions options;
  options.block_size = f.block_size;
  std::vector<Point> points;
  for (const std::string& scene_name : f.scenes) {
    for (std::uint64_t seed : f.seeds) {
      SceneConfig config;
      config.preset = scene_name;
      config.seqlen = f.len;
      config.heads_q = f.heads_q;
      config.heads_kv = f.heads_kv;
      config.head_dim = f.head_dim;
      config.seed = seed;
      const Scene scene = generate_scene(config);
      const TensorView q = scene.q.view(), k = scene.k.view(), v = scene.v.view();
      const DenseReference dense = compute_dense_reference(q, k, v, options);
      fmt::print(stderr, "{} seed {}: dense reference {:.1f} s, oracle density at 95% (median head) {:.3f}\n",
                 scene_name, seed, dense.seconds, summarize(dense.oracle_density95).p50);
      for (const std::string& method : f.methods) {
        const auto it = thresholds.find(method);
        const std::vector<double> sweep = it == thresholds.end() ? std::vector<double>{NAN} : it->second;
        for (double threshold : sweep) {
          SelectorSettings settings = f.settings;
          if (!std::isnan(threshold)) settings.set_threshold(method, threshold);
          const Evaluation e = evaluate_selector(*make_selector(method, settings), q, k, v, dense, options);
          Point p{scene_name,
                  method,
                  seed,
                  threshold,
                  e.density.overall,
                  summarize(e.recall.head_min).min,
                  summarize(e.recall.head_mean).mean,
                  e.error.overall,
                  e.times.front().seconds};
          fmt::print(
              stderr,
              "  {:<12} {:>5} density {:.3f} recall min {:.3f} mean {:.4f} err {:.3e} select {:.2f} s\n",
              method, std::isnan(threshold) ? std::string("-") : fmt::format("{:.2f}", threshold), p.density,
              p.recall_min, p.recall_mean, p.error, p.select_seconds);
          points.push_back(p);
        }
      }
    }
  }
  const std::vector<Point> means = average_over_seeds(points);
  std::vector<PlotPanel> panels;
  for (const std::string& scene_name : f.scenes) {
    fmt::print("\nscene {} ({} tokens, means over {} seed(s); recall min is the minimum over seeds)\n",
               scene_name, f.len, f.seeds.size());
    fmt::print("{:<12} {:>9} {:>8} {:>11} {:>12} {:>12} {:>11}\n", "method", "threshold", "density",
               "recall min", "recall mean", "out rel err", "select ms");
    PlotPanel panel{scene_name + ", " + std::to_string(f.len) + " tokens",
                    "density (selected / causal blocks)",
                    "mean recall of attention mass",
                    0,
                    1,
                    1,
                    1,
                    {}};
    for (const std::string& method : f.methods) {
      PlotSeries series{method, {}, {}};
      std::vector<Point> rows;
      for (const Point& p : means) {
        if (p.scene == scene_name && p.method == method) rows.push_back(p);
      }
      std::sort(rows.begin(), rows.end(),
                [](const Point& a, const Point& b) { return a.density < b.density; });
      for (const Point& p : rows) {
        fmt::print("{:<12} {:>9} {:>8.4f} {:>11.4f} {:>12.4f} {:>12.3e} {:>11.1f}\n", method,
                   std::isnan(p.threshold) ? std::string("budgets") : fmt::format("{:.2f}", p.threshold),
                   p.density, p.recall_min, p.recall_mean, p.error, p.select_seconds * 1e3);
        series.x.push_back(p.density);
        series.y.push_back(p.recall_mean);
        panel.y_min = std::min(panel.y_min, std::floor(p.recall_mean * 10) / 10);
      }
      panel.series.push_back(series);
    }
    panel.y_min = std::min(panel.y_min, 0.9);
    panels.push_back(panel);
  }
  if (!f.json_out.empty()) {
    nlohmann::json j;
    j["len"] = f.len;
    j["block_size"] = f.block_size;
    for (const Point& p : points) {
      j["points"].push_back(
          {{"scene", p.scene},
           {"seed", p.seed},
           {"method", p.method},
           {"threshold", std::isnan(p.threshold) ? nlohmann::json() : nlohmann::json(p.threshold)},
           {"density", p.density},
           {"recall_min", p.recall_min},
           {"recall_mean", p.recall_mean},
           {"output_error", p.error},
           {"select_seconds", p.select_seconds}});
    }
    write_text_file(f.json_out, j.dump(2) + "\n");
    fmt::print("wrote {}\n", f.json_out);
  }
  if (!f.png_out.empty()) {
    write_line_plot_png(f.png_out, panels);
    fmt::print("wrote {}\n", f.png_out);
  }
  return 0;
}

}  // namespace

std::function<int()> add_eval_command(CLI::App& app) {
  auto flags = std::make_shared<EvalFlags>();
  EvalFlags& f = *flags;
  CLI::App* cmd = app.add_subcommand(
      "eval", "Sweep methods x thresholds over scenes x seeds: table, JSON, recall-vs-density plot");
  cmd->add_option("--methods", f.methods, "Methods to evaluate")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::IsMember(selector_names()));
  cmd->add_option("--scenes", f.scenes, "Scene presets")->delimiter(',')->capture_default_str();
  cmd->add_option("--seeds", f.seeds, "Scene seeds")->delimiter(',')->capture_default_str();
  cmd->add_option("--sweep", f.sweeps,
                  "Thresholds of one method, METHOD=T1,T2,... (repeatable; defaults per method)");
  cmd->add_option("--len", f.len, "Scene length in tokens")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 22));
  cmd->add_option("--heads-q", f.heads_q, "Query heads (0: the preset's)")->check(CLI::Range(0, 1024));
  cmd->add_option("--heads-kv", f.heads_kv, "KV heads (0: the preset's)")->check(CLI::Range(0, 1024));
  cmd->add_option("--head-dim", f.head_dim, "Head dimension (0: the preset's)")->check(CLI::Range(0, 256));
  cmd->add_option("--block-size", f.block_size, "Block size")
      ->capture_default_str()
      ->check(CLI::IsMember({64, 128}));
  cmd->add_option("--json", f.json_out, "Write every evaluated point as JSON to FILE")->check(output_file());
  cmd->add_option("--png", f.png_out, "Draw recall-versus-density curves to FILE.png")->check(output_file());
  add_selector_flags(cmd, f.settings);
  return [flags, cmd] { return run(*flags, *cmd); };
}

}  // namespace sparsefill::cli
