#!/usr/bin/env bash
# Fetches the CUTLASS/CuTe C++ headers (PyPI nvidia-cutlass, pinned and checksummed) into .deps/cutlass/include,
# where CMake finds them (override with -DCUTLASS_DIR=<dir holding cute/ and cutlass/>). The wheel is kept in
# .deps/wheels so it can be carried to the GPU machine, which reaches no package index: there the headers are
# unpacked from the carried wheel. Does nothing when the headers of the pinned version are already there.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=4.2.0.0
wheel="$repo/.deps/wheels/nvidia_cutlass-$version-py3-none-any.whl"
sha256=f9599ada45c7bcb6bf53f7d3f0a7d154183e53451c01bfa59eecd37dd4a693f6
dest="$repo/.deps/cutlass"
stamp="$dest/VERSION"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version" ] && [ -f "$dest/include/cute/tensor.hpp" ]; then exit 0; fi
if ! { [ -f "$wheel" ] && echo "$sha256  $wheel" | sha256sum -c --status; }; then
  echo "fetch_cutlass: downloading nvidia-cutlass==$version from PyPI"
  mkdir -p "$(dirname "$wheel")"
  python3 -m pip download --quiet --no-deps "nvidia-cutlass==$version" -d "$(dirname "$wheel")"
  echo "$sha256  $wheel" | sha256sum -c --status || { echo "fetch_cutlass: checksum mismatch" >&2; exit 1; }
fi
tmp=$(mktemp -d "$repo/.deps/cutlass.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
python3 - "$wheel" "$tmp" <<'PY'
import sys, zipfile
prefix = "cutlass_library/source/include/"
with zipfile.ZipFile(sys.argv[1]) as z:
    members = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not members:
        sys.exit("fetch_cutlass: the wheel holds no headers under " + prefix)
    z.extractall(sys.argv[2], members)
PY
rm -rf "$dest"
mkdir -p "$dest"
mv "$tmp/cutlass_library/source/include" "$dest/include"
echo "$version" >"$stamp"
