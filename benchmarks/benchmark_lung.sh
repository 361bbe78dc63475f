#!/usr/bin/env bash
# The strategy benchmarks recorded in docs/results/benchmark-lc25000-lung-*/ (see docs/benchmark-lc25000-lung.md):
# LC25000 lung, grouped 70/10/20 split per seed, `cpu` preset (frozen EfficientNet-Lite0 features,
# UniSAL co-training heads), 5 seeds, every strategy plus UniSAL with the supervised learner, and
# full supervision on the same split.
#   large: 50 initial labels + 10 rounds of 100 = 1,050 labels (10 % of the 10,500-image pool)
#   small: 10 initial labels + 10 rounds of 10  =   110 labels (1 % of the pool)
# Usage: PATH=$PWD/.venv/bin:$PATH bash benchmarks/benchmark_lung.sh large|small [OUT]
# Resumable: run it again after an interruption. The tables and curves are copied into docs/results/.
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
DATA=${DATA:-../shared/data/lc25000-lung}
SETTING=${1:?large or small}
OUT=${2:-runs/benchmark-lung-$SETTING}
STRATEGIES=random,entropy,margin,bald,coreset,badge,typiclust,unisal,dus_random,cs_only,unisal@frozen:supervised
case $SETTING in
  large) sizes=(--initial 50 --budget 100 --rounds 10) ;;
  small) sizes=(--initial 10 --budget 10 --rounds 10) ;;
  *) echo "unknown setting $SETTING: large or small" >&2; exit 2 ;;
esac
start=$(date +%s)
unisal benchmark --data "$DATA" --groups "$DATA/groups.csv" --preset cpu --config benchmarks/val-fraction-10.yaml \
  --strategies "$STRATEGIES" --seeds "${SEEDS:-0-4}" "${sizes[@]}" --out "$OUT"
echo "wall seconds of this call: $(( $(date +%s) - start ))" | tee -a "$OUT/wall_seconds.txt"
DOCS=docs/results/benchmark-lc25000-lung-$SETTING
mkdir -p "$DOCS"
cp "$OUT"/{results.csv,summary.md,settings.md,curves.png,curves.svg,benchmark.yaml,wall_seconds.txt} "$DOCS/"
