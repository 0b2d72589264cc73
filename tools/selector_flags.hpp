// Selector options shared by the CLI's commands: every selector parameter as a flag "--<method>-<name>"
// bound to a SelectorSettings, and threshold sweeps "--sweep METHOD=T1,T2,...".
#pragma once
#include <CLI/CLI.hpp>
#include <map>
#include <string>
#include <vector>

#include "sparsefill/selector.hpp"

namespace sparsefill::cli {

void add_selector_flags(CLI::App* command, SelectorSettings& settings);

// Error(flag) when `command` was given a selector flag of a method outside `methods` (the methods it runs):
// such a flag would change nothing, so it is a mistake to name rather than to ignore.
void require_selector_flags_of(const CLI::App& command, const std::vector<std::string>& methods);

// `defaults` with each "METHOD=T1,T2,..." of `sweeps` replacing its method's list. Error("--sweep") for a
// malformed item, a method outside `methods` (those the command runs) or without a threshold, or a threshold
// outside (0, 1].
std::map<std::string, std::vector<double>> parse_sweeps(const std::vector<std::string>& sweeps,
                                                        const std::vector<std::string>& methods,
                                                        std::map<std::string, std::vector<double>> defaults);

}  // namespace sparsefill::cli
