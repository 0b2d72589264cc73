// sparsefill: try block-sparse prefill attention on built-in scenes or captured tensors.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <vector>

#include "commands.hpp"
#include "sparsefill/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "sparsefill: block-sparse attention for long-context prefill (selectors, kernels, evaluation)"};
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, std::function<int()>>> commands;
  commands.emplace_back(nullptr, sparsefill::cli::add_run_command(app));
  commands.back().first = app.get_subcommand("run");
  commands.emplace_back(nullptr, sparsefill::cli::add_eval_command(app));
  commands.back().first = app.get_subcommand("eval");
  commands.emplace_back(nullptr, sparsefill::cli::add_capture_command(app));
  commands.back().first = app.get_subcommand("capture");
  commands.emplace_back(nullptr, sparsefill::cli::add_model_eval_command(app));
  commands.back().first = app.get_subcommand("model-eval");
  commands.emplace_back(nullptr, sparsefill::cli::add_scenes_command(app));
  commands.back().first = app.get_subcommand("scenes");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, action] : commands) {
      if (sub->parsed()) return action();
    }
  } catch (const sparsefill::Error& e) {
    fmt::print(stderr, "sparsefill: error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "sparsefill: error: {}\n", e.what());
    return 1;
  }
  return 1;
}
