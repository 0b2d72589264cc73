#!/usr/bin/env bash
# Run on the GPU machine: unpacks the carried .debs into .deps/root and prints the environment to use them.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
mkdir -p "$repo/.deps/root"
for f in "$repo"/.deps/debs/*.deb; do dpkg -x "$f" "$repo/.deps/root"; done
echo "export CMAKE_PREFIX_PATH=$repo/.deps/root/usr"
# dpkg -x runs no maintainer scripts, so OpenBLAS stays in its alternatives folder: point CMake and the loader there.
blas="$repo/.deps/root/usr/lib/x86_64-linux-gnu/openblas-pthread"
echo "export CMAKE_LIBRARY_PATH=$blas"
echo "export LD_LIBRARY_PATH=$blas:$repo/.deps/root/usr/lib/x86_64-linux-gnu:\${LD_LIBRARY_PATH:-}"
echo "export SPARSEFILL_FONT=$repo/.deps/root/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
