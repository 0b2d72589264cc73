#!/usr/bin/env bash
# A/B of a change to the selectors on one GPU machine (run from the repository root there): "new" is
# the working tree, "main" the same with exp/$PATCH reversed (PATCH: `git diff` of the change; exp/ is an
# untracked folder, ignored through .git/info/exclude and named in the run's carry list). Builds both
# bench_prefill (and new's test_gpu_selection) under /tmp/v, runs new's selection tests (GTEST_FILTER, default
# the pooled masks, PBS and varlen), bench_prefill at 128K for AB_METHODS (default dense, Prism, mean pooling
# and PBS; dense first) in the order new main new main (ab.txt; one line of select / graph ms each), then ncu
# on NCU_KERNEL (a kernel name regex, default Prism's row kernel, score_rows) at locked clocks for both, run on
# AB_METHODS (each template instance's last and median launch, bench/ncu_kernel_times.py; NCU=0 skips it, for
# changes that rename the kernel).
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out"
eval "$(scripts/device/unpack_deps.sh)"
scripts/fetch_cutlass.sh > /dev/null
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
rm -rf /tmp/v && mkdir -p /tmp/v && cp -r . /tmp/v/new && cp -r . /tmp/v/main
(cd /tmp/v/main && git apply -R exp/$PATCH && echo "main copy: patch reversed") || exit 1
for v in main new; do
  targets=bench_prefill; [ $v = new ] && targets="bench_prefill test_gpu_selection"
  (cd /tmp/v/$v && cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPARSEFILL_CUDA=ON \
     -DCMAKE_CUDA_ARCHITECTURES=90a > /tmp/v/$v.cfg 2>&1 && cmake --build build-gpu --parallel 8 --target $targets > /tmp/v/$v.build 2>&1; echo "$v build rc=$?") &
done
wait
grep -E "error" -A3 /tmp/v/new.build | head -20
(cd /tmp/v/new && timeout 200 build-gpu/tests/test_gpu_selection --gtest_filter="${GTEST_FILTER:-*MasksEqualTheCpuSelectors*:*Pbs*:*Varlen*}" > "$out/gpu_selection.log" 2>&1)
echo "gpu selection: $(grep -cE '^\[       OK \]' "$out/gpu_selection.log") ok, $(grep -cE '^\[  FAILED  \] .*\(' "$out/gpu_selection.log") failed"
grep -E "differ|equal" "$out/gpu_selection.log" | head -30
methods=${AB_METHODS:-dense,prism,meanpool,pbs}
selectors=${methods#dense,}; count=$(echo "$selectors" | tr ',' '\n' | wc -l)  # the lines each run prints
for v in new main new main; do
  echo "== $v" >> "$out/ab.txt"
  timeout 120 /tmp/v/$v/build-gpu/bench/bench_prefill --len 131072 --reps 15 --methods "$methods" >> "$out/ab.txt" 2>&1
  echo "$v: $(grep -E "^(${selectors//,/|}) " "$out/ab.txt" | tail -"$count" | awk '{printf "%s %s/%s  ", $1, $5, $6}')"
done
for v in new main; do
  [ "${NCU:-1}" = 1 ] || break
  timeout 100 ncu --metrics gpu__time_duration.sum -k "regex:${NCU_KERNEL:-score_rows}" /tmp/v/$v/build-gpu/bench/bench_prefill --len 131072 --reps 1 --methods "$methods" > "$out/ncu_$v.txt" 2>&1
  echo "ncu $v, ${NCU_KERNEL:-score_rows} at locked clocks (ms):"
  python3 bench/ncu_kernel_times.py --templates "$out/ncu_$v.txt"
done
