#!/usr/bin/env bash
# Thirteenth session, run5: the band handover with band tiles handed out dynamically (working tree), alone on
# the machine (main's numbers: run4, ncu row kernel median 883.1 us at locked clocks, Prism 1.063 / 1.066 ms).
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out"
eval "$(scripts/device/unpack_deps.sh)"
scripts/fetch_cutlass.sh > /dev/null
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPARSEFILL_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a > "$out/configure.log" 2>&1
cmake --build build-gpu --parallel 16 --target bench_prefill test_gpu_selection > "$out/build.log" 2>&1 || { grep -E "error" -A3 "$out/build.log" | head -20; exit 1; }
timeout 60 build-gpu/tests/test_gpu_selection --gtest_filter='GpuSelection.MasksEqualTheCpuSelectors:GpuSelection.Pbs*:GpuSelection.Prefill*:GpuSelection.FlexPrefill*' > "$out/gpu_selection.log" 2>&1
echo "gpu selection: $(grep -cE '^\[       OK \]' "$out/gpu_selection.log") ok, $(grep -cE '^\[  FAILED  \] .*\(' "$out/gpu_selection.log") failed; $(grep -cE '\(0 differ\)' "$out/gpu_selection.log") comparisons with 0 differing"
grep -E "[(;] ?[1-9][0-9]* differ|Failure" "$out/gpu_selection.log" | head -10
timeout 100 ncu --metrics gpu__time_duration.sum -k regex:score_rows build-gpu/bench/bench_prefill --len 131072 --reps 1 --methods dense,prism > "$out/ncu_new.txt" 2>&1
echo "ncu, Prism's row kernel at locked clocks (us): $(grep -E 'gpu__time_duration' "$out/ncu_new.txt" | awk '{print $NF}' | sort -n | awk '{a[NR]=$1} END {print "launches", NR, "min", a[1], "median", a[int((NR+1)/2)], "max", a[NR]}')"
timeout 90 build-gpu/bench/bench_prefill --len 131072 --reps 15 --methods dense,prism,meanpool > "$out/prefill.txt" 2>&1
grep -E "^(prism|meanpool) " "$out/prefill.txt"
timeout 60 compute-sanitizer --tool memcheck build-gpu/tests/test_gpu_selection --gtest_filter='*Varlen*:*Graph*' > "$out/memcheck_selection.log" 2>&1
echo "memcheck: $(grep -E 'ERROR SUMMARY' "$out/memcheck_selection.log" | tail -1)"
