#!/usr/bin/env bash
# Train the default fast-128 model on a lent GPU machine in ONE device-tool call (< 9 min).
#
# Prepare on the CPU machine (the device tool carries at most 64 MiB of ignored paths):
#   python tools/gpu_data.py pack --cache /work/runs/cache_full --out .gpu_data/train.npz --max-mib 40
#   mkdir -p .models && cp <face_recognition_models>/models/dlib_face_recognition_resnet_model_v1.dat .models/
# (.gpu_data and .models are in .git/info/exclude.) Then, with the device tool:
#   run(command="bash tools/gpu_train.sh", carry=[".gpu_data", ".models"], timeout_s=560)
# and copy $OUT/fast-128.safetensors over identitydp_fast/weights/fast-128.safetensors after
# checking $OUT/train.log and the sample grids (then run `identitydp evaluate` here).
#
# What it does: unpack the crops, warm-start from the packaged weights when they exist
# (their DP centre / clip are kept; see Trainer.init_from_weights), train for MINUTES
# (default 7) at batch BATCH (default 32) on cuda, export the EMA model (fp16) at every
# checkpoint and at the end into $OUT, with the last sample grid and the log.
# No _C build is needed: the DP noise falls back to the bit-identical reference backend.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu}"
MINUTES="${MINUTES:-7}"
BATCH="${BATCH:-32}"
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
[ -d .models ] && export IDP_MODEL_DIR="$PWD/.models"
# (training needs no dlib: the identity loss runs our port of dlib's ResNet on the .dat file)
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
fi
"$PY" tools/gpu_data.py unpack .gpu_data/train.npz --cache /tmp/idp_gpu_cache | tee -a "$OUT/gpu.txt"
INIT=()
if [ -f identitydp_fast/weights/fast-128.safetensors ]; then
  INIT=(--init identitydp_fast/weights/fast-128.safetensors)
fi
"$PY" tools/train.py --cache /tmp/idp_gpu_cache --out /tmp/idp_gpu_run --device "$DEVICE" \
  --batch "$BATCH" --minutes "$MINUTES" "${INIT[@]}" \
  --p-rec 0.2 --p-dp 0.4 --eps-min 1 --eps-max 1000 --w-id 8 --degrade-sigma 7 \
  --lr-g 2e-4 --lr-d 8e-4 --sample-every 1000 --checkpoint-every 1000 --log-every 100 \
  --export "$OUT/fast-128.safetensors" 2>&1 | tee "$OUT/train.log"
cp "$(ls -t /tmp/idp_gpu_run/samples_*.png | head -1)" "$OUT/" 2>/dev/null || true
ls -la "$OUT"
