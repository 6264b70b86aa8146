#!/usr/bin/env bash
# One-call GPU check (DESIGN.md section 8), for the lent H100/H200 machine:
#   1. build _C with the CUDA kernels (sm_90) into a throwaway prefix,
#   2. run the whole test suite (every CUDA and Triton kernel against the reference),
#   3. run the benchmarks on the GPU (reference on the GPU as the baseline),
#   4. print a short table last.
# Usage (device tool): bash bench/gpu_check.sh   -- writes logs and JSON to $OUT (or bench/out).
# Takes ~6-8 minutes; writes 8 files into $OUT (the device tool's limit). Carry .whl (dlib-bin wheel for cp312) and .models (dlib .dat files). Copy the final table into bench/RESULTS.md with the card and date.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
"$PY" -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)" | tee -a "$OUT/gpu.txt"

SITE=/tmp/idp-site
rm -rf "$SITE"
# Carried extras (device tool: carry .whl and .models): wheels missing on the GPU image
# (dlib-bin) and the CC0 dlib model files (instead of the face-recognition-models package).
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/idp-extra .whl/*.whl \
    && export PYTHONPATH="/tmp/idp-extra${PYTHONPATH:+:$PYTHONPATH}"
fi
[ -d .models ] && export IDP_MODEL_DIR="$PWD/.models"
echo "== build (IDP_CUDA=ON, sm_90)"
start=$(date +%s)
if ! IDP_CUDA=ON "$PY" -m pip install -q --no-build-isolation --no-deps --target "$SITE" \
    -Ccmake.define.IDP_CUDA_ARCHS=90-real -Cbuild-dir=/tmp/idp-build . > "$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"; echo "BUILD FAILED"; exit 1
fi
echo "built in $(( $(date +%s) - start )) s"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
# tests and benchmarks must import the installed package, not the source folder
cd /tmp
"$PY" -c "import identitydp_fast as i, identitydp_fast._C as c; print('with_cuda', c.with_cuda, 'backends', i.backends())" | tee -a "$OUT/gpu.txt"

echo "== tests"
timeout 240 "$PY" -m pytest -q -p no:cacheprovider --rootdir="$OLDPWD" -c "$OLDPWD/pyproject.toml" \
  "$OLDPWD/tests" 2>&1 | tee "$OUT/tests.log" | tail -15
tests_rc=${PIPESTATUS[0]}

echo "== benchmarks"
IDP_BENCH_DEVICE=cuda timeout 200 "$PY" -m pytest -q -c "$OLDPWD/bench/pytest.ini" --rootdir="$OLDPWD/bench" \
  "$OLDPWD/bench" --benchmark-min-time=0.02 --benchmark-max-time=0.5 --benchmark-columns=median,ops,rounds \
  --benchmark-json="$OUT/bench.json" 2>&1 | tee "$OUT/bench.log" | sed -n '/speed-up over the reference/,$p'
cp "$(ls -t "$OLDPWD"/bench/out/ratios-*.json | head -1)" "$OUT"/ 2>/dev/null

echo "== bf16 matmul ceiling (8192^3, the TFLOP/s column's yardstick)"
timeout 60 "$PY" - <<'PYEOF' 2>&1 | tee -a "$OUT/e2e.log"
import torch, time
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16); b = torch.randn_like(a)
for _ in range(3): a @ b
torch.cuda.synchronize(); t = time.perf_counter(); n = 20
for _ in range(n): a @ b
torch.cuda.synchronize(); dt = (time.perf_counter() - t) / n
print(f"bf16 matmul ceiling: {2 * 8192**3 / dt / 1e12:.0f} TFLOP/s")
PYEOF
echo "== end to end (identitydp bench): encoder + IdentityDP + generator"
# torch.compile (default mode) only at batch 1: its compile time would eat the lease;
# max-autotune (compile-max) takes minutes and is left to a longer lease.
for cfg in fast-128 paper-256; do
  for b in 1 64; do
    backends=cuda,cuda+graph,triton,triton-bf16,triton-bf16+graph
    [ "$b" = 1 ] && backends=reference,compile,$backends || backends=reference,$backends
    timeout 100 "$PY" -m identitydp_fast bench --config $cfg --batch $b --device cuda \
      --backends $backends --repeats 20 2>&1 | tail -9 | tee -a "$OUT/e2e.log"
  done
done
# the default model, prior-256: its engine (engine/prior_mix.py) is float32 without CUDA
# graphs yet, so reference, compile (batch 1), cuda and triton
for b in 1 64; do
  backends=cuda,triton
  [ "$b" = 1 ] && backends=reference,compile,$backends || backends=reference,$backends
  timeout 100 "$PY" -m identitydp_fast bench --config prior-256 --batch $b --device cuda \
    --backends $backends --repeats 20 2>&1 | tail -7 | tee -a "$OUT/e2e.log"
done
echo "== concurrent load (bench/load_test.py): 4 threads share one Anonymizer, every result checked, RSS over 2000 calls"
# needs the packaged default model in the build; without it the script says so and exits 2.
# One result file (the device tool returns at most 8): the output, then its markdown and JSON.
rm -rf /tmp/idp-load
timeout 150 "$PY" "$OLDPWD/bench/load_test.py" --device cuda --threads 4 --requests 10 \
  --calls-for-leak 2000 --out /tmp/idp-load 2>&1 | tee "$OUT/load.log" | tail -6
cat /tmp/idp-load/load-*.md /tmp/idp-load/load-*.json >> "$OUT/load.log" 2>/dev/null
echo "== summary: tests rc=$tests_rc ($(tail -1 "$OUT/tests.log"))"
exit $tests_rc
