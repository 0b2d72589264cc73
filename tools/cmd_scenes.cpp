// `sparsefill scenes`: list the scene presets.
#include <fmt/core.h>

#include "commands.hpp"
#include "sparsefill/scene.hpp"

namespace sparsefill::cli {

std::function<int()> add_scenes_command(CLI::App& app) {
  app.add_subcommand("scenes", "List the built-in scene presets (RoPE-faithful synthetic Q/K/V)");
  return [] {
    fmt::print("{:<14} {:>8} {:>9} {:>9}  {}\n", "preset", "heads_q", "heads_kv", "head_dim", "description");
    for (const auto& p : scene_presets()) {
      fmt::print("{:<14} {:>8} {:>9} {:>9}  {} (theta {:g})\n", p.name, p.heads_q, p.heads_kv, p.head_dim,
                 p.description, p.rope_theta);
    }
    return 0;
  };
}

}  // namespace sparsefill::cli
