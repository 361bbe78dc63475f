#!/usr/bin/env bash
# The frozen-learner experiments recorded in docs/results-frozen-lc25000-lung.md, on LC25000 lung
# with the grouped 70/10/20 split of each seed, all with the `cpu` preset (frozen learner):
#   curves/  UniSAL and random sampling, 30 initial labels + 10 rounds of 50 (530 labels = 5 % of the pool);
#            then, on UniSAL's labelled set of every round, supervised references with 2 and 1 networks
#   speed/   UniSAL, 30 + 10 rounds of 30 (the timing run; rounds 0-5 also match the fine-tuning runs)
#   first/, tta/  UniSAL as in curves/, but predictions (pool scoring, validation, test) on the image as is,
#            or on every view with the outputs averaged, instead of on the view-averaged features
#   full/    full supervision (all 10,500 pool labels), 2 and 1 networks, 30 passes over the labels
# Usage: PATH=$PWD/.venv/bin:$PATH bash benchmarks/frozen_lung_experiment.sh [OUT] ; SEEDS="0 1 2" by default.
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
DATA=${DATA:-../shared/data/lc25000-lung}
OUT=${1:-runs/frozen-lung}
SEEDS=${SEEDS:-0 1 2}
data=(--data "$DATA" --groups "$DATA/groups.csv" --preset cpu --config benchmarks/val-fraction-10.yaml --quiet)
mkdir -p "$OUT"
[ -f "$OUT/wall_seconds.csv" ] || echo "job,seconds" > "$OUT/wall_seconds.csv"
timed() {  # name, command...: skipped when done (its output folder holds a finished run)
  local name=$1; shift
  if grep -q "^$name," "$OUT/wall_seconds.csv"; then return; fi
  local start=$(date +%s.%N)
  "$@" > /dev/null
  echo "$name,$(echo "$(date +%s.%N) - $start" | bc)" >> "$OUT/wall_seconds.csv"
}
simulate() {  # name, seed, extra flags...
  local name=$1 seed=$2; shift 2
  local out="$OUT/$name/seed$seed"
  local resume=(); [ -f "$out/state.json" ] && resume=(--resume)
  timed "$name/seed$seed" unisal simulate "${data[@]}" --seed "$seed" --out "$out" "${resume[@]}" "$@"
}
unisal features --data "$DATA" --groups "$DATA/groups.csv" --preset cpu --quiet | tee "$OUT/features.txt"
for seed in $SEEDS; do
  simulate speed/unisal "$seed" --strategy unisal --initial 30 --budget 30 --rounds 10
  simulate curves/unisal "$seed" --strategy unisal --initial 30 --budget 50 --rounds 10
  simulate curves/random "$seed" --strategy random --initial 30 --budget 50 --rounds 10
  simulate first/unisal "$seed" --strategy unisal --initial 30 --budget 50 --rounds 10 --score-views first
  simulate tta/unisal "$seed" --strategy unisal --initial 30 --budget 50 --rounds 10 --score-views tta
  for networks in 2 1; do
    for round in $(seq 0 10); do
      timed "curves/supervised-n$networks/seed$seed/round_$round" unisal supervised --run "$OUT/curves/unisal/seed$seed" \
        --labels run --round "$round" --networks "$networks" --out "$OUT/curves/supervised-n$networks/seed$seed/round_$round" --quiet
    done
    # 30 passes over the 10,500 labels (batch 128: 82 steps an epoch); 30 beat 10 on validation.
    timed "full/n$networks/seed$seed" unisal supervised --run "$OUT/curves/unisal/seed$seed" --labels all \
      --networks "$networks" --epochs 30 --steps-per-epoch 82 --out "$OUT/full/n$networks/seed$seed" --quiet
  done
done
