#!/usr/bin/env bash
# Builds everything (installing what is missing) and runs the whole test suite. GPU tests (label gpu) report
# "skipped" where no CUDA device is present.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$repo/scripts/setup.sh"
build_dir=${SPARSEFILL_BUILD_DIR:-$repo/build}
cd "$build_dir"
ctest --output-on-failure --parallel "$(nproc)" "$@"
