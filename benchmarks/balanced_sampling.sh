#!/usr/bin/env bash
# Do class-balanced labelled batches stop the co-trained frozen heads from collapsing when the
# selected labels hold few images of a class? (The 5-seed small benchmark of issue 6: UniSAL,
# BALD and others fell to 0.52-0.80 accuracy with 1-3 benign labels among 20-110.)
# The small setting (10 + 10 x 10 labels), seeds 0-4, UniSAL, BALD and random, twice:
# train.labelled_sampling uniform (the default) and balanced; everything else equal.
# Usage: PATH=$PWD/.venv/bin:$PATH bash benchmarks/balanced_sampling.sh [OUT]; then
#        python benchmarks/summarise_balanced.py OUT
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
DATA=${DATA:-../shared/data/lc25000-lung}
OUT=${1:-runs/balanced-sampling}
mkdir -p "$OUT"
for how in uniform balanced; do
  printf 'train:\n  labelled_sampling: %s\n' "$how" > "$OUT/$how.yaml"
  start=$(date +%s)
  unisal benchmark --data "$DATA" --groups "$DATA/groups.csv" --preset cpu --config "$OUT/$how.yaml" \
    --strategies unisal,bald,random --seeds "${SEEDS:-0-4}" --initial 10 --budget 10 --rounds 10 \
    --no-reference --out "$OUT/$how"
  echo "$how: $(( $(date +%s) - start )) s" | tee -a "$OUT/wall_seconds.txt"
done
