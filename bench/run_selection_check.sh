#!/usr/bin/env bash
# A shorter GPU run than run_gpu_check.sh for work on the selectors (on the device machine, from the repository
# root): build for sm_90a, the selection tests against the CPU, memcheck of the selection pipeline, the
# end-to-end prefill benchmark of SELECT_METHODS at SELECT_LENS (with PEERS=1 followed by the peers of
# bench/peers.py: torch SDPA and FlexAttention on the same masks), and, with NCU=1, the time of every selection
# kernel of NCU_METHODS (default prism, pbs) at the longest length (ncu, one rep; NCU_CLOCKS=none: at the
# GPU's own clocks instead of ncu's locked base clocks), and with NCU_FULL="kernel:method:len
# ..." a full ncu profile of one launch of each named kernel (its throughputs, issue rate and warp stalls are
# printed), and with NCU_SASS (same form) the executed count and warp stall samples of every SASS instruction
# of one launch (csv), summed by loop (bench/sass_regions.py). TESTS=0 skips the tests and memcheck; gtest's own
# GTEST_FILTER narrows test_gpu_selection (e.g. '-*Stride*:*OnePass*' leaves out the stride tests, ~6 of its ~7
# minutes, for work that does not touch the stride kernels). Logs go under ${OUT:-out}; the key lines are printed.
set -uo pipefail
out=${OUT:-out}
mkdir -p "$out"
eval "$(scripts/device/unpack_deps.sh)"
scripts/fetch_cutlass.sh  # unpacks the carried wheel (.deps/wheels)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPARSEFILL_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
  > "$out/configure.log" 2>&1 && rm "$out/configure.log" || { tail -30 "$out/configure.log"; exit 1; }
targets=bench_prefill; [ "${TESTS:-1}" = 1 ] && targets="$targets test_gpu_selection"  # TESTS=0 builds only the benchmark
cmake --build build-gpu --parallel "$(nproc)" --target $targets > "$out/build.log" 2>&1 || { grep -E "error" -A3 "$out/build.log" | head -40; exit 1; }
if [ "${TESTS:-1}" = 1 ]; then  # TESTS=0: benchmarks and profiles only, for code a previous run tested
  timeout 420 build-gpu/tests/test_gpu_selection > "$out/gpu_selection.log" 2>&1
  echo "gpu selection: $(grep -cE '^\[       OK \]' "$out/gpu_selection.log") ok, $(grep -cE '^\[  FAILED  \] .*\(' "$out/gpu_selection.log") failed"
  grep -E "[(;] ?[1-9][0-9]* differ|Failure|FAILED|workspace at" "$out/gpu_selection.log" | head -20
  timeout 240 compute-sanitizer --tool memcheck build-gpu/tests/test_gpu_selection --gtest_filter='*Varlen*:*Graph*:*PbsPrefill*' > "$out/memcheck_selection.log" 2>&1
  echo "memcheck (selection + pipeline): $(grep -E 'ERROR SUMMARY' "$out/memcheck_selection.log" | tail -1)"
fi
lens=${SELECT_LENS:-32768,131072}
mkdir -p "$out/masks"
for len in ${lens//,/ }; do
  timeout 300 build-gpu/bench/bench_prefill --len "$len" --reps 9 --methods "${SELECT_METHODS:-dense,prism,meanpool,rr,pbs,minference,flexprefill}" \
    --mask-dir "$out/masks" | tee -a "$out/prefill.txt"
done
if [ "${PEERS:-0}" = 1 ]; then  # torch SDPA (cuDNN, flash) and FlexAttention on the same masks, same run
  timeout 400 python3 bench/peers.py --len "$lens" --mask-dir "$out/masks" 2>"$out/peers.err" | tee "$out/peers.txt"
fi
rm -rf "$out/masks"
if [ "${NCU:-0}" = 1 ]; then
  longest=${lens##*,}
  for method in ${NCU_METHODS:-prism pbs}; do
    timeout 240 ncu ${NCU_CLOCKS:+--clock-control "$NCU_CLOCKS"} --metrics gpu__time_duration.sum -k 'regex:pool|energy|scale|score_rows|importance|proxy|segment_rank|last_rows|merge_row|line_|flex|stride' \
      build-gpu/bench/bench_prefill --len "$longest" --reps 1 --methods "dense,$method" > "$out/ncu_$method.txt" 2>&1
    echo "ncu $method at $longest (ms):"
    python3 bench/ncu_kernel_times.py "$out/ncu_$method.txt"
  done
fi
for spec in ${NCU_SASS:-}; do  # per-instruction executed counts of one launch (SASS, csv) for instruction hunting
  kernel=${spec%%:*} rest=${spec#*:}; len=${rest##*:} method=${rest%:*}  # the method may hold colons
  timeout 300 ncu --section SourceCounters --section InstructionStats -k "regex:$kernel" --launch-count 1 -f -o "$out/sass_$kernel" \
    build-gpu/bench/bench_prefill --len "$len" --reps 1 --methods "dense,$method" > "$out/ncu_sass_$kernel.log" 2>&1
  ncu -i "$out/sass_$kernel.ncu-rep" --page source --print-source sass --csv > "$out/sass_$kernel.csv" 2>&1
  echo "ncu sass: $kernel ($method, $len): $(wc -l < "$out/sass_$kernel.csv") lines; by loop (bench/sass_regions.py):"
  python3 bench/sass_regions.py "$out/sass_$kernel.csv" --top 12 > "$out/sass_regions_$kernel.txt" && head -12 "$out/sass_regions_$kernel.txt"
  rm -f "$out/sass_$kernel.ncu-rep"
done
for spec in ${NCU_FULL:-}; do
  kernel=${spec%%:*} rest=${spec#*:}; len=${rest##*:} method=${rest%:*}
  timeout 300 ncu --clock-control none --set full -k "regex:$kernel" --launch-count 1 \
    build-gpu/bench/bench_prefill --len "$len" --reps 1 --methods "dense,$method" > "$out/ncu_full_$kernel.txt" 2>&1
  echo "ncu full: $kernel ($method, $len)"
  grep -E "^  [a-z_]+.*\(|Duration|Compute \(SM\) Throughput|Memory Throughput|Issue Slots Busy|Registers Per|Achieved Occupancy|Executed Instructions  |L1/TEX Hit|L2 Hit|Warp Cycles Per Issued|Stall|stalled|One or More Eligible" \
    "$out/ncu_full_$kernel.txt" | grep -v "^==" | head -24
done
