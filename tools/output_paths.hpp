// Checks of the paths a subcommand writes, run when its flags are parsed: a missing or read-only folder is a
// usage error before any work, not a write error at the end of a long run after its other outputs were
// written.
#pragma once
#include <CLI/CLI.hpp>

namespace sparsefill::cli {

// FILE's folder (the working directory for a bare name) exists and is writable.
CLI::Validator output_file();
// The folder exists and is writable.
CLI::Validator output_folder();

}  // namespace sparsefill::cli
