#!/usr/bin/env bash
# End-to-end tests of the `sparsefill` CLI ($SPARSEFILL): runs, outputs, and clear failures on bad input.
set -u
bin=${SPARSEFILL:?set SPARSEFILL to the sparsefill binary}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
check() {  # check "description" command...
  local what=$1; shift
  if "$@"; then echo "ok   - $what"; else echo "FAIL - $what"; failures=$((failures + 1)); fi
}
fails_with() {  # fails_with "description" "expected text" command...
  local what=$1 expected=$2; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ $rc -ne 0 ] && grep -q -- "$expected" <<<"$out"; then echo "ok   - $what"; else
    echo "FAIL - $what (exit $rc, output: $out)"; failures=$((failures + 1)); fi
}

check "help documents run flags" bash -c "'$bin' run --help | grep -q -- '--mask-out'"
check "scenes lists presets" bash -c "'$bin' scenes | grep -q llama31-like"

out=$("$bin" run --scene llama31-like --len 300 --heads-q 8 --heads-kv 2 --seed 3 --device cpu --json "$work/r.json" \
      --mask-out "$work/m.safetensors" --png "$work/m.png" 2>&1)
check "run exits 0" test $? -eq 0
check "run prints the table" grep -q "recall mean" <<<"$out"
check "run prints stage times" grep -q "dense attention (reference)" <<<"$out"
check "dense keeps every visible block" grep -Eq "dense +48/48 +1.0000 +1.0000 +1.0000 +0.000e\+00" <<<"$out"
check "json written" python3 -c "import json,sys; j=json.load(open('$work/r.json')); sys.exit(0 if j['density']['overall']==1.0 and len(j['heads'])==8 else 1)"
check "mask written" test -s "$work/m.safetensors"
check "png written" bash -c "head -c 4 '$work/m.png' | grep -q PNG"

# Captured tensors: write a scene's q/k/v, run them from files and from one safetensors file.
"$bin" run --scene slash --len 200 --heads-q 4 --heads-kv 1 --head-dim 64 --non-causal --block-size 64 --per-head \
  --json "$work/s.json" >/dev/null 2>&1
check "non-causal run with 64 blocks" python3 -c "import json,sys; j=json.load(open('$work/s.json')); sys.exit(0 if j['causal'] is False and j['block_size']==64 else 1)"

# Every method runs from the CLI; a method flag reaches its selector.
for m in prism rr pbs xattn flexprefill minference meanpool oracle; do
  extra=""; [ $m = pbs ] && extra="--pbs-segment 256"; [ $m = flexprefill ] && extra="--flexprefill-min-budget 128"
  check "method $m runs" bash -c "'$bin' run --scene slash-stress --len 600 --heads-q 4 --heads-kv 2 --head-dim 64 --block-size 64 --method $m $extra --json '$work/$m.json' >/dev/null 2>&1"
done
fails_with "a flag of a method the run does not run is rejected" "--prism-d-high: applies to method prism" \
  "$bin" run --len 64 --heads-q 2 --heads-kv 1 --method rr --prism-d-high 32
check "prism threshold flag changes the density" python3 -c "
import json, subprocess, sys
def density(p):
    subprocess.run(['$bin', 'run', '--scene', 'slash-stress', '--len', '600', '--heads-q', '4', '--heads-kv', '2', '--head-dim', '64',
                    '--block-size', '64', '--method', 'prism', '--prism-p-high', p, '--prism-p-low', p, '--json', '$work/pd.json'],
                   check=True, capture_output=True)
    return json.load(open('$work/pd.json'))['density']['overall']
sys.exit(0 if density('0.5') < density('0.99') else 1)"
out=$("$bin" eval --methods prism,meanpool --scenes sink,slash --seeds 1,2 --len 300 --heads-q 4 --heads-kv 1 --head-dim 64 \
      --sweep prism=0.8,0.9 --json "$work/e.json" --png "$work/e.png" 2>/dev/null)
check "eval prints a table per scene" test "$(grep -c '^scene ' <<<"$out")" -eq 2
check "eval json has every point" python3 -c "import json,sys; j=json.load(open('$work/e.json')); sys.exit(0 if len(j['points'])==2*2*(2+3) else 1)"
check "eval png written" bash -c "head -c 4 '$work/e.png' | grep -q PNG"
fails_with "eval rejects a bad sweep" "--sweep" "$bin" eval --methods prism --sweep prism=abc --len 64
fails_with "eval rejects a sweep of a method it does not run" "not among --methods" "$bin" eval --methods prism \
  --sweep rr=0.9 --len 64
if ! command -v nvidia-smi >/dev/null 2>&1; then
  fails_with "--device cuda without a GPU is a clear error" "device" "$bin" run --len 64 --heads-q 2 --heads-kv 1 --device cuda
fi
if [ -f "${SPARSEFILL_MODEL:-}" ]; then
  "$bin" capture --model "$SPARSEFILL_MODEL" --prompt "The capital of France is Paris. The capital of Italy is Rome." \
    --layers 0,29 --out "$work" >/dev/null 2>&1
  check "capture writes the chosen layers" test -s "$work/layer_0.safetensors" -a -s "$work/layer_29.safetensors"
  check "captured q/k/v run through every selector path" bash -c "'$bin' run --q '$work/layer_29.safetensors:q' \
    --k '$work/layer_29.safetensors:k' --v '$work/layer_29.safetensors:v' --rope-layout interleaved --method prism \
    --block-size 64 >/dev/null 2>&1"
  fails_with "capture rejects a layer out of range" "--layers" "$bin" capture --model "$SPARSEFILL_MODEL" --prompt hi --layers 30 --out "$work"
  out=$("$bin" model-eval --model "$SPARSEFILL_MODEL" --methods dense,meanpool --sweep meanpool=0.5,0.9 --ppl-tokens 256 \
        --passkey-lengths 300 --passkey-depths 0.5 --block-size 64 --json "$work/me.json" --png "$work/me.png" 2>/dev/null)
  check "model-eval prints dense and both thresholds" test "$(grep -cE '^(dense|meanpool) ' <<<"$out")" -eq 3
  check "model-eval json: delta PPL 0 for dense, per-layer stats and a passkey cell per method" python3 -c "
import json, sys
r = json.load(open('$work/me.json'))['results']
ok = len(r) == 3 and r[0]['delta_perplexity'] == 0 and 'layers' not in r[0] and len(r[1]['layers']) == 30
ok = ok and all(len(x['passkey']) == 1 and 0 < x['density'] <= 1 for x in r) and r[1]['density'] < r[2]['density']
sys.exit(0 if ok else 1)"
  check "model-eval png written" bash -c "head -c 4 '$work/me.png' | grep -q PNG"
  fails_with "model-eval needs dense first" "--methods" "$bin" model-eval --model "$SPARSEFILL_MODEL" --methods prism,dense --ppl-tokens 64
  printf 'A short text.' > "$work/short.txt"
  fails_with "model-eval rejects a text shorter than --ppl-tokens" "--ppl-tokens" "$bin" model-eval --model "$SPARSEFILL_MODEL" \
    --text "$work/short.txt" --ppl-tokens 4096
  fails_with "model-eval rejects a passkey length too short for the prompt" "length" "$bin" model-eval --model "$SPARSEFILL_MODEL" \
    --methods dense --ppl-tokens 64 --passkey-lengths 64
else
  echo "skip - capture checks (no model: scripts/fetch_model.sh)"
fi
fails_with "unknown method is rejected" "method" "$bin" run --method nosuch --len 64
fails_with "zero length is rejected" "--len" "$bin" run --len 0
fails_with "bad head split is rejected" "heads_kv" "$bin" run --len 64 --heads-q 6 --heads-kv 4
fails_with "missing k/v with --q is rejected" "requires" "$bin" run --q "$work/none.npy"
printf 'garbage' > "$work/bad.npy"
fails_with "corrupt q file is rejected" "bad.npy" "$bin" run --q "$work/bad.npy" --k "$work/bad.npy" --v "$work/bad.npy"
fails_with "scene and files are exclusive" "excludes" "$bin" run --scene sink --q "$work/bad.npy" --k "$work/bad.npy" --v "$work/bad.npy"
fails_with "a json path in a missing folder fails before the run" "does not exist" "$bin" run --len 64 --heads-q 2 \
  --heads-kv 1 --json "$work/no/such/dir/r.json"
fails_with "a bad mask path fails before any output is written" "--mask-out" "$bin" run --len 64 --heads-q 2 --heads-kv 1 \
  --json "$work/early.json" --mask-out "$work/no/such/dir/m.safetensors"
check "nothing was written by the failed run" test ! -e "$work/early.json"
fails_with "eval's png path in a missing folder fails before the sweep" "does not exist" "$bin" eval --methods prism \
  --len 64 --png "$work/no/such/dir/e.png"

echo "cli: $failures failure(s)"
test $failures -eq 0
