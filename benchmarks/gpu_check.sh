#!/usr/bin/env bash
# The GPU check recorded in docs/benchmarks.md: the CUDA path (AMP, channels-last) of both learners.
#   1. `paper` preset (ResNet-50, 224 px, 200 epochs, batch 128): round 0 (train, test) and its selection;
#      the time limit stops it during round 1's training (resume would continue it). The GPU machine has
#      no internet, so ResNet-50 starts from random weights: a check of the path and of its speed.
#   2. the same preset with EfficientNet-Lite0 (its ImageNet weights ship offline): round 0 only, for accuracy.
#   3. the frozen learner on the GPU: the feature cache at 224 px, then 30 + 10 x 30 labels of UniSAL.
# Usage: DATA=path/to/class/folders bash benchmarks/gpu_check.sh [OUT]   (DATA needs a groups.csv)
set -uo pipefail
DATA=${DATA:?set DATA to a class-folder data set with groups.csv}
OUT=${1:-runs/gpu-check}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
export UNISAL_CACHE=${UNISAL_CACHE:-$OUT/cache} PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PYTHON" -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, torch.cuda.get_device_name())"
} > "$OUT/machine.txt" 2>&1
echo "job,seconds,exit" > "$OUT/wall_seconds.csv"
timed() {  # name, limit in seconds, command...
  local name=$1 limit=$2; shift 2
  local start=$EPOCHREALTIME
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local status=$?
  echo "$name,$(awk "BEGIN {print $EPOCHREALTIME - $start}"),$status" >> "$OUT/wall_seconds.csv"
}
common=(--data "$DATA" --groups "$DATA/groups.csv" --device cuda --quiet)
timed paper-resnet50 230 "$PYTHON" -m unisal simulate "${common[@]}" --preset paper --no-pretrained --rounds 1 --out "$OUT/paper-resnet50"
timed features-224 90 "$PYTHON" -m unisal features "${common[@]}" --image-size 224
timed frozen-224 100 "$PYTHON" -m unisal simulate "${common[@]}" --config benchmarks/val-fraction-10.yaml --image-size 224 --initial 30 --budget 30 --rounds 10 --out "$OUT/frozen-224"
timed paper-lite0 110 "$PYTHON" -m unisal simulate "${common[@]}" --preset paper --backbone tf_efficientnet_lite0 --rounds 0 --out "$OUT/paper-lite0"
cat "$OUT/machine.txt" "$OUT/wall_seconds.csv"
for run in paper-resnet50 frozen-224 paper-lite0; do
  echo "== $run"; cat "$OUT/$run/rounds.csv" 2>/dev/null || tail -5 "$OUT/$run.log"
done
tail -2 "$OUT/features-224.log"
