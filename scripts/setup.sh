#!/usr/bin/env bash
# Shared set-up of demo.sh and test.sh: installs what is missing (Debian packages), then configures and builds
# into $SPARSEFILL_BUILD_DIR (default: build/). Safe to run repeatedly; installs nothing that is present.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${SPARSEFILL_BUILD_DIR:-$repo/build}

debian_packages=(cmake ninja-build g++ pkg-config libcli11-dev libfmt-dev nlohmann-json3-dev libpng-dev libfreetype-dev
                 fonts-dejavu-core libopenblas-dev libgtest-dev googletest python3 python3-pip)

install_debian_packages() {
  local missing=()
  for p in "${debian_packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

find_nvcc() {
  if command -v nvcc >/dev/null 2>&1; then command -v nvcc; return; fi
  for candidate in /usr/local/cuda/bin/nvcc /usr/local/cuda-13*/bin/nvcc; do
    [ -x "$candidate" ] && { echo "$candidate"; return; }
  done
}

configure_and_build() {
  local cmake_args=(-S "$repo" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release)
  local nvcc
  nvcc=$(find_nvcc || true)
  if [ -n "$nvcc" ]; then
    "$repo/scripts/fetch_cutlass.sh"
    cmake_args+=(-DCMAKE_CUDA_COMPILER="$nvcc")
  else
    echo "setup: no nvcc found; building without the CUDA kernels"
  fi
  cmake "${cmake_args[@]}" >"$build_dir/configure.log" 2>&1 || { cat "$build_dir/configure.log"; exit 1; }
  cmake --build "$build_dir" --parallel "$(nproc)"
}

install_debian_packages
"$repo/scripts/fetch_model.sh"
mkdir -p "$build_dir"
configure_and_build
