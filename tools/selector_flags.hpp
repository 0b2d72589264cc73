// Registers every selector parameter as a CLI flag "--<method>-<name>" bound to a SelectorSettings.
#pragma once
#include <CLI/CLI.hpp>

#include "sparsefill/selector.hpp"

namespace sparsefill::cli {

void add_selector_flags(CLI::App* command, SelectorSettings& settings);

}  // namespace sparsefill::cli
