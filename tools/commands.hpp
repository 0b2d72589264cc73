// Subcommands of the `sparsefill` CLI. Each registers its flags on the app and runs when selected.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

namespace sparsefill::cli {

// Returns the action to run when the subcommand was chosen (exit code).
std::function<int()> add_run_command(CLI::App& app);
std::function<int()> add_scenes_command(CLI::App& app);
std::function<int()> add_eval_command(CLI::App& app);
std::function<int()> add_capture_command(CLI::App& app);
std::function<int()> add_model_eval_command(CLI::App& app);

}  // namespace sparsefill::cli
