#!/usr/bin/env bash
# One full GPU run (on the device machine, from the repository root): unpack the carried deps, build for sm_90a,
# run the GPU tests (attention cases, selectors against the CPU, the select + attend pipeline), compute-sanitizer
# memcheck and racecheck on small cases, then the kernel benchmark, the end-to-end prefill benchmark
# (PREFILL_LENS) and the peers.
# Everything is logged under ${OUT:-out}; the summary is printed last.
set -uo pipefail
out=${OUT:-out}
mkdir -p "$out"
eval "$(scripts/device/unpack_deps.sh)"
scripts/fetch_cutlass.sh  # unpacks the carried wheel (.deps/wheels): this machine reaches no package index
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPARSEFILL_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
  > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build build-gpu --parallel "$(nproc)" > "$out/build.log" 2>&1 || { grep -E "error" -A3 "$out/build.log" | head -40; exit 1; }
(cd build-gpu && ctest -L gpu --timeout 180 --output-on-failure) > "$out/gpu_tests.log" 2>&1
echo "gpu tests: $(grep -E 'tests passed|tests failed' "$out/gpu_tests.log")"
timeout 180 build-gpu/tests/test_gpu_attention > "$out/gpu_cases.log" 2>&1
echo "gpu cases: $(grep -cE '^\[       OK \]' "$out/gpu_cases.log") ok, $(grep -cE '^\[  FAILED  \] .*\(' "$out/gpu_cases.log") failed"
timeout 300 build-gpu/tests/test_gpu_selection > "$out/gpu_selection.log" 2>&1
echo "gpu selection: $(grep -cE '^\[       OK \]' "$out/gpu_selection.log") ok, $(grep -cE '^\[  FAILED  \] .*\(' "$out/gpu_selection.log") failed"
grep -E "block decisions|workspace" "$out/gpu_selection.log"
timeout 240 compute-sanitizer --tool memcheck build-gpu/tests/test_gpu_attention --gtest_filter='*mha_odd_length*:*varlen*:*noncausal_empty*:*hopper_mha_d64_odd*' > "$out/memcheck.log" 2>&1
echo "memcheck: $(grep -E 'ERROR SUMMARY' "$out/memcheck.log" | tail -1)"
timeout 240 compute-sanitizer --tool memcheck build-gpu/tests/test_gpu_selection --gtest_filter='*Varlen*:*Graph*' > "$out/memcheck_selection.log" 2>&1
echo "memcheck (selection + pipeline, every GPU selector): $(grep -E 'ERROR SUMMARY' "$out/memcheck_selection.log" | tail -1)"
timeout 240 compute-sanitizer --tool racecheck build-gpu/tests/test_gpu_attention --gtest_filter='*mha_odd_length*:*hopper_varlen_gqa*:*hopper_mha_d64_odd*' > "$out/racecheck.log" 2>&1
echo "racecheck: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$out/racecheck.log" | tail -1)"
SPARSEFILL_FONT=/nonexistent build-gpu/tools/sparsefill run --scene llama31-like --len 8192 --method prism --device cuda \
  > "$out/demo_gpu.txt" 2>&1
echo "demo on the GPU:"; grep -E "device|prism|stage|select|sparse|dense|total" "$out/demo_gpu.txt"
mkdir -p "$out/masks"
timeout 120 build-gpu/bench/bench_block_sparse_attention --len "${BENCH_LENS:-8192,32768}" --mask-dir "$out/masks" | tee "$out/bench.txt"
build-gpu/bench/bench_block_sparse_attention --len "${BENCH_LONG:-131072}" --reps 3 --mask-dir "$out/masks" | tail -n +3 | tee -a "$out/bench.txt"
PREFILL_LENS=${PREFILL_LENS:-32768,131072}
for len in ${PREFILL_LENS//,/ }; do
  timeout 300 build-gpu/bench/bench_prefill --len "$len" --methods "${PREFILL_METHODS:-dense,prism,meanpool,rr,xattn,minference,pbs,flexprefill}" --mask-dir "$out/masks" \
    | tee -a "$out/prefill.txt"
done
python3 bench/peers.py --len "${BENCH_LENS:-8192,32768},${BENCH_LONG:-131072}" --mask-dir "$out/masks" 2>"$out/peers.err" | tee "$out/peers.txt"
rm -rf "$out/masks"
