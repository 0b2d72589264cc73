#!/usr/bin/env bash
# Experiment (twelfth+1 session): eager vs graph selection times, with and without the opt-in cache.
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out"
eval "$(scripts/device/unpack_deps.sh)"
scripts/fetch_cutlass.sh > /dev/null
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"
rm -rf /tmp/v && mkdir -p /tmp/v
cp -r . /tmp/v/opt 2>/dev/null; rm -rf /tmp/v/opt/build-gpu
cp -r /tmp/v/opt /tmp/v/main
(cd /tmp/v/main && git apply -R exp/opt_in_once.patch && rm cuda/common/shared_memory_opt_in.hpp) || exit 1
for v in main opt; do
  (cd /tmp/v/$v && cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPARSEFILL_CUDA=ON \
     -DCMAKE_CUDA_ARCHITECTURES=90a > /tmp/v/$v.cfg 2>&1 && cmake --build build-gpu --parallel 8 --target bench_prefill > /tmp/v/$v.build 2>&1; echo "$v build rc=$?") &
done
wait
methods=${METHODS:-dense,prism,pbs,rr:key-sums=rounded:passes=one}
for v in main opt main opt; do
  echo "== $v" | tee -a "$out/eager.txt"
  timeout 200 /tmp/v/$v/build-gpu/bench/bench_prefill --len 131072 --reps 9 --methods "$methods" >> "$out/eager.txt" 2>&1
  grep -E "^EXPERIMENT" "$out/eager.txt" | tail -3
done
