#!/usr/bin/env bash
# The LC25000-lung experiment recorded in docs/results-lc25000-lung.md:
# UniSAL and random sampling with the same learner (fine-tuning: the `cpu-finetune` preset, the
# default `cpu` preset of that time), then two one-network supervised
# references on the same grouped 70/10/20 split. Usage: bash benchmarks/lung_experiment.sh [OUT]
# SEED=1 picks another split, initial set and initialisation; REFERENCES=0 skips the supervised runs.
set -euo pipefail
DATA=${DATA:-../shared/data/lc25000-lung}
OUT=${1:-runs/lung}
SEED=${SEED:-0}
mkdir -p "$OUT"
timed() {  # name, command...
  local name=$1; shift
  local start=$(date +%s)
  "$@"
  echo "$name,$(( $(date +%s) - start ))" >> "$OUT/wall_seconds.csv"
}
[ -f "$OUT/wall_seconds.csv" ] || echo "job,seconds" > "$OUT/wall_seconds.csv"
common=(--data "$DATA" --groups "$DATA/groups.csv" --seed "$SEED" --preset cpu-finetune --config benchmarks/val-fraction-10.yaml --quiet)
timed unisal unisal simulate "${common[@]}" --strategy unisal --out "$OUT/unisal"
timed random unisal simulate "${common[@]}" --strategy random --out "$OUT/random"
[ "${REFERENCES:-1}" = 1 ] || exit 0
timed supervised-unisal-labels unisal supervised --run "$OUT/unisal" --labels run --networks 1 --out "$OUT/supervised-unisal-labels" --quiet
timed supervised-all-labels unisal supervised --run "$OUT/unisal" --labels all --networks 1 --epochs 4 --steps-per-epoch 300 --out "$OUT/supervised-all" --quiet
