#!/usr/bin/env bash
# Issue 8, item 15: what should model selection cost? UniSAL (cpu preset) on LC25000-lung,
# seeds 0-2, compared at equal *total* labels (AL labels + validation labels):
#   none:  --val-size 0, a fixed schedule (the last epoch's weights)
#   val30: --val-size 30, counted in the total (so 30 fewer labels for active learning)
#   val1500 (reference): the old default, 10 % of all labels (about 1,500), not counted
#            (data.val_size: null; the default is now none, chosen by this measurement)
# Usage: PATH=$PWD/.venv/bin:$PATH bash benchmarks/validation_choice.sh [OUT]; then
#        python benchmarks/summarise_validation.py OUT
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
DATA=${DATA:-../shared/data/lc25000-lung}
OUT=${1:-runs/validation-choice}
common=(--data "$DATA" --groups "$DATA/groups.csv" --preset cpu --quiet --budget 10)
for seed in ${SEEDS:-0 1 2}; do
  for setting in none val30 val1500; do
    case $setting in
      none) extra=(--val-size 0 --initial 40 --rounds 12) ;;
      val30) extra=(--val-size 30 --initial 10 --rounds 12) ;;
      val1500) extra=(--config benchmarks/val-fraction-10.yaml --initial 40 --rounds 12) ;;
    esac
    out="$OUT/$setting/seed$seed"
    resume=(); [ -f "$out/state.json" ] && resume=(--resume)
    unisal simulate "${common[@]}" "${extra[@]}" --seed "$seed" --out "$out" "${resume[@]}" > /dev/null
  done
done
echo "done: $OUT"
