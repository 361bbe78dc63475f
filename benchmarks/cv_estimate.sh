#!/usr/bin/env bash
# How far is the accuracy a lab is told (cross-validated over its labels, with a Wilson 95 %
# interval: unisal.estimate) from the test accuracy? Issue 15, item 5; docs/robust-default.md.
# UniSAL with the cpu preset and query.cv_folds 5, on LC25000-lung: the imbalanced setting
# (benchmarks/imbalanced-10-3-1.yaml, 20 + 10 x 20 labels, seeds 0-1) and the large one
# (50 + 10 x 100, seed 0). Writes docs/results/cv-estimate/{rounds_*.csv,summary.md}.
# Usage: PATH=$PWD/.venv/bin:$PATH bash benchmarks/cv_estimate.sh [OUT]
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
DATA=${DATA:-../shared/data/lc25000-lung}
OUT=${1:-runs/cv-estimate}
DOCS=docs/results/cv-estimate
mkdir -p "$OUT" "$DOCS"
printf 'query:\n  cv_folds: 5\n' > "$OUT/cv5.yaml"
cat benchmarks/imbalanced-10-3-1.yaml "$OUT/cv5.yaml" > "$OUT/cv5-imbalanced.yaml"
run() {  # name config initial budget seed
  [ -f "$OUT/$1/state.json" ] && resume=(--resume) || resume=()
  unisal simulate --data "$DATA" --groups "$DATA/groups.csv" --config "$2" --initial "$3" --budget "$4" \
    --rounds 10 --seed "$5" --quiet --out "$OUT/$1" "${resume[@]}"
  cp "$OUT/$1/rounds.csv" "$DOCS/rounds_$1.csv"
}
start=$(date +%s)
run imbalanced-seed0 "$OUT/cv5-imbalanced.yaml" 20 20 0
run imbalanced-seed1 "$OUT/cv5-imbalanced.yaml" 20 20 1
run large-seed0 "$OUT/cv5.yaml" 50 100 0
echo "wall seconds: $(( $(date +%s) - start ))" | tee "$DOCS/wall_seconds.txt"
python benchmarks/summarise_cv.py "$DOCS" > "$DOCS/summary.md"
