#!/usr/bin/env bash
# Thirteenth session, run3/run4: the row kernel's band handover (new = working tree) against main (c60ebbc).
#   PHASE=build: builds main and new bench_prefill and new's test_gpu_selection in parallel under /tmp/v,
#                then new's GPU selection tests (without the stride ones) and memcheck.
#   PHASE=all: the builds without the tests, then the benchmarks. PHASE=bench: bench_prefill at 128K in the order new main new main, then ncu (locked clocks) on the row
#                kernel of both.
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out"
eval "$(scripts/device/unpack_deps.sh)"
if [ "${PHASE:-build}" != bench ]; then
  scripts/fetch_cutlass.sh > /dev/null
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
  rm -rf /tmp/v && mkdir -p /tmp/v && cp -r . /tmp/v/new && cp -r . /tmp/v/main
  (cd /tmp/v/main && git apply -R exp/handover.patch && echo "main copy: $(grep -c handover cuda/select/score_rows.cuh) handover lines") || exit 1
  for v in main new; do
    targets=bench_prefill; [ $v = new ] && [ "${PHASE:-build}" = build ] && targets="bench_prefill test_gpu_selection"
    (cd /tmp/v/$v && cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPARSEFILL_CUDA=ON \
       -DCMAKE_CUDA_ARCHITECTURES=90a > /tmp/v/$v.cfg 2>&1 && cmake --build build-gpu --parallel 8 --target $targets > /tmp/v/$v.build 2>&1; echo "$v build rc=$?") &
  done
  wait
  grep -E "error" -A3 /tmp/v/new.build | head -20
fi
if [ "${PHASE:-build}" = build ]; then
  cd /tmp/v/new
  timeout 300 build-gpu/tests/test_gpu_selection --gtest_filter='-*Stride*:*OnePass*' > "$out/gpu_selection.log" 2>&1
  echo "gpu selection: $(grep -cE '^\[       OK \]' "$out/gpu_selection.log") ok, $(grep -cE '^\[  FAILED  \] .*\(' "$out/gpu_selection.log") failed"
  grep -E "[(;] ?[1-9][0-9]* differ|Failure|FAILED|equal" "$out/gpu_selection.log" | head -30
  timeout 200 compute-sanitizer --tool memcheck build-gpu/tests/test_gpu_selection --gtest_filter='*Varlen*:*Graph*:*PbsPrefill*' > "$out/memcheck_selection.log" 2>&1
  echo "memcheck: $(grep -E 'ERROR SUMMARY' "$out/memcheck_selection.log" | tail -1)"
  timeout 100 compute-sanitizer --tool racecheck build-gpu/tests/test_gpu_selection --gtest_filter='*Varlen*' > "$out/racecheck_selection.log" 2>&1
  echo "racecheck: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$out/racecheck_selection.log" | tail -1)"
else
  for v in new main new main; do
    echo "== $v" >> "$out/ab.txt"
    timeout 120 /tmp/v/$v/build-gpu/bench/bench_prefill --len 131072 --reps 15 --methods dense,prism,meanpool,pbs >> "$out/ab.txt" 2>&1
    echo "$v: $(grep -E '^(prism|meanpool|pbs) ' "$out/ab.txt" | tail -3 | awk '{printf "%s %s/%s  ", $1, $5, $6}')"
  done
  for v in new main; do
    timeout 100 ncu --metrics gpu__time_duration.sum -k regex:score_rows /tmp/v/$v/build-gpu/bench/bench_prefill --len 131072 --reps 1 --methods dense,prism > "$out/ncu_$v.txt" 2>&1
    echo "ncu $v, Prism's row kernel at locked clocks (us): $(grep -E 'gpu__time_duration' "$out/ncu_$v.txt" | awk '{print $NF}' | sort -n | awk '{a[NR]=$1} END {print "launches", NR, "min", a[1], "median", a[int((NR+1)/2)], "max", a[NR]}')"
  done
fi
