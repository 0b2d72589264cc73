#!/usr/bin/env bash
# Run on the development machine: downloads the Debian packages the build needs into .deps/debs (git-ignored), so
# they can be carried to the GPU machine, which reaches no package registry. unpack_deps.sh installs them there
# into a private prefix (never into /).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
mkdir -p "$repo/.deps/debs"
cd "$repo/.deps/debs"
apt-get download libcli11-dev libfmt-dev libfmt9 nlohmann-json3-dev libpng-dev libpng16-16 zlib1g-dev libfreetype-dev \
  libfreetype6 libbrotli-dev libbrotli1 libbz2-dev libbz2-1.0 zlib1g libgtest-dev googletest fonts-dejavu-core \
  libopenblas-dev libopenblas0 libopenblas-pthread-dev libopenblas0-pthread libgfortran5 >/dev/null
ls "$repo/.deps/debs"
