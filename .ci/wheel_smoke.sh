#!/usr/bin/env bash
# Wheel smoke test: what a user gets from `pip wheel .` + `pip install <wheel>`.
#   1. build the wheel with build isolation (pip fetches scikit-build-core and pybind11
#      itself, as on a user's machine), CPU kernels only unless IDP_CUDA says otherwise
#      (CUDA for five architectures takes many minutes on a small CI machine);
#   2. check that the wheel carries the packaged models identitydp_fast/weights/{fast-128,prior-256}.safetensors
#      and the face detectors' weights identitydp_fast/weights/{centerface,retinaface}.safetensors;
#   3. install torch, then the wheel with its dependencies, into a fresh venv in a temp dir;
#   4. from a folder outside the repository, run `identitydp anonymize <repo>/examples --out
#      <tmp>/out` and check that every example has an output image of the same size whose
#      face region differs from the input's.
# Usage: bash .ci/wheel_smoke.sh   (env: PYTHON=python3, TORCH="torch==2.13.0", IDP_CUDA=OFF,
# KEEP=1 keeps the temp dir). Exit 0 only when every check passed.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
TORCH_SPEC="${TORCH:-torch==2.13.0}"
export IDP_CUDA="${IDP_CUDA:-OFF}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/idp-wheel-smoke.XXXXXX")"
if [ "${KEEP:-0}" = 1 ]; then echo "wheel-smoke: keeping $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi
say() { echo "wheel-smoke: $*"; }
fail() { echo "wheel-smoke: FAIL: $*" >&2; exit 1; }

say "building the wheel (IDP_CUDA=$IDP_CUDA, build isolation)"
start=$(date +%s)
# a fresh output folder: no stale wheel from an earlier build can be picked up
if ! "$PY" -m pip wheel "$REPO" --no-deps -w "$WORK/dist" > "$WORK/build.log" 2>&1; then
  tail -30 "$WORK/build.log" >&2; fail "pip wheel failed (log above)"
fi
WHEEL="$(ls "$WORK"/dist/identitydp_fast-*.whl)"
say "built $(basename "$WHEEL") in $(( $(date +%s) - start )) s"

for MODEL in fast-128 prior-256 centerface retinaface; do
  if ! "$PY" -c "import sys, zipfile; sys.exit('identitydp_fast/weights/$MODEL.safetensors' not in zipfile.ZipFile(sys.argv[1]).namelist())" "$WHEEL"; then
    fail "$(basename "$WHEEL") lacks identitydp_fast/weights/$MODEL.safetensors, a packaged model \
(\`Anonymizer(model='$MODEL')\`): commit it under identitydp_fast/weights/ (the wheel packs the \
whole identitydp_fast folder)"
  fi
done

say "installing $TORCH_SPEC and the wheel into a fresh venv"
"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install -q "$TORCH_SPEC" || fail "pip install $TORCH_SPEC failed"
"$VPY" -m pip install -q "$WHEEL" || fail "pip install of the wheel (and its dependencies) failed"

# outside the repository, so that the installed package (not the source tree) is imported
mkdir -p "$WORK/run" && cd "$WORK/run"
"$VPY" -c "import identitydp_fast as i, sys; assert '$REPO' not in i.__file__, i.__file__; print('wheel-smoke: imported', i.__file__)"
"$WORK/venv/bin/identitydp" anonymize "$REPO/examples" --out "$WORK/out" || fail "identitydp anonymize exited $?"

"$VPY" - "$REPO/examples" "$WORK/out" <<'EOF' || fail "output check failed"
"""Every example image has an output of the same size whose face box differs from the input."""
import sys
from pathlib import Path

import numpy as np
from identitydp_fast import detect_faces
from identitydp_fast.pipeline.decode import read_image

src, out = Path(sys.argv[1]), Path(sys.argv[2])
images = sorted(p for p in src.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp"})
if not images:
    sys.exit(f"no example images in {src}")
for p in images:
    found = sorted(out.glob(p.stem + ".*"))
    if not found:
        sys.exit(f"no output for {p.name} in {out} (it holds {sorted(x.name for x in out.iterdir())})")
    a, b = read_image(p), read_image(found[0])
    if a.shape != b.shape:
        sys.exit(f"{found[0].name}: shape {b.shape}, input {a.shape}")
    faces = detect_faces(a)
    if not faces:
        sys.exit(f"{p.name}: no face detected in the input, nothing to compare")
    for f in faces:
        l, t, r, btm = f.box
        diff = np.abs(a[t:btm + 1, l:r + 1].astype(int) - b[t:btm + 1, l:r + 1].astype(int)).mean()
        print(f"wheel-smoke: {p.name} -> {found[0].name}: face {f.box} mean |diff| {diff:.1f}")
        if diff < 2.0:
            sys.exit(f"{found[0].name}: the face {f.box} is (nearly) unchanged, mean |diff| {diff:.2f}")
EOF
say "OK"
