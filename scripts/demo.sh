#!/usr/bin/env bash
# The main job on the built-in default scene: Prism selection plus block-sparse attention on Llama-3.1-8B head
# geometry (32 query / 8 KV heads, head_dim 128), 8192 tokens, bf16, causal, compared with dense attention. Prints
# what was kept, how close it is to dense, and how long each stage took; writes a JSON report and a PNG of the mask
# and the true block attention mass under out/. Extra arguments go to `sparsefill run` (for example:
# --method rr --len 4096 --scene slash-stress).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$repo/scripts/setup.sh"
build_dir=${SPARSEFILL_BUILD_DIR:-$repo/build}
mkdir -p "$repo/out"
"$build_dir/tools/sparsefill" run --scene llama31-like --len 8192 --seed 0 --method prism \
  --json "$repo/out/demo.json" --png "$repo/out/demo.png" "$@"
