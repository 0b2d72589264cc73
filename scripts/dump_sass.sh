#!/usr/bin/env bash
# Prints the SASS of the kernels in a built object or binary, for counting a kernel's instructions before
# tuning it on a machine without the CUDA toolkit's disassembler (this project's build image has nvcc and ptxas
# only): cuobjdump and nvdisasm come from their pinned PyPI wheels (kept in .deps/wheels, unpacked into
# .deps/cudatools). Needs the object built for sm_90a (the GPU build; `cmake -DSPARSEFILL_CUDA=ON`).
#
#   scripts/dump_sass.sh FILE [REGEX]          the SASS of every kernel whose mangled name matches REGEX
#   scripts/dump_sass.sh --loops FILE [REGEX]  per kernel: its instruction count and its loops (backward
#                                              branches, with the instructions they span; bench/sass_regions.py)
#
# e.g. scripts/dump_sass.sh --loops build/CMakeFiles/sparsefill.dir/cuda/select/stride_tile_bf16_one_pass.cu.o 'Li32ELb1ELi1'
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
loops=0
if [ "${1:-}" = "--loops" ]; then loops=1; shift; fi
[ $# -ge 1 ] && [ -f "$1" ] || { echo "usage: scripts/dump_sass.sh [--loops] FILE [REGEX]" >&2; exit 2; }
file=$1 pattern=${2:-.}
version=13.5.37
tools="$repo/.deps/cudatools"
bin="$tools/nvidia/cu13/bin"
declare -A sha256=(
  [nvidia_cuda_cuobjdump]=38780fee50863252a0b8926357faa91615ca1c8346490563f33a06100cd73f58
  [nvidia_cuda_nvdisasm]=d3fdbdd49fa53e2e4aacd3db8259d052bd2b049ececdcb69e92e083c6728e7ca
)
if ! [ -x "$bin/cuobjdump" ] || ! [ -x "$bin/nvdisasm" ]; then
  mkdir -p "$repo/.deps/wheels" "$tools"
  for name in nvidia_cuda_cuobjdump nvidia_cuda_nvdisasm; do
    wheel="$repo/.deps/wheels/$name-$version-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
    if ! { [ -f "$wheel" ] && echo "${sha256[$name]}  $wheel" | sha256sum -c --status; }; then
      echo "dump_sass: downloading ${name//_/-}==$version from PyPI" >&2
      python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
        "${name//_/-}==$version" -d "$repo/.deps/wheels"
      echo "${sha256[$name]}  $wheel" | sha256sum -c --status || { echo "dump_sass: checksum mismatch: $wheel" >&2; exit 1; }
    fi
    python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$wheel" "$tools"
  done
  chmod +x "$bin/cuobjdump" "$bin/nvdisasm"
fi
# The sections of the kernels whose names match, then (--loops) their loops by bench/sass_regions.py.
PATH="$bin:$PATH" cuobjdump -sass "$file" |
  awk -v pattern="$pattern" '/Function : /{keep = ($NF ~ pattern)} keep' |
  if [ "$loops" = 1 ]; then python3 "$repo/bench/sass_regions.py" --sass -; else cat; fi
