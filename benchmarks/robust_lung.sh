#!/usr/bin/env bash
# The benchmarks of issue 15 recorded in docs/results/robust-{large,small,imbalanced}/ (see docs/robust-default.md):
# LC25000 lung, grouped 80/20 pool/test split per seed, no validation labels (the default), the `cpu`
# preset, 5 seeds. Arms: the default (unisal with the preset's training), today's UniSAL before
# issue 15 pinned (unisal+v1), UniSAL's selection with supervised heads, margin, BADGE, core-set,
# CS alone and random, all with the preset's learner; full supervision on each split.
#   large:      50 initial labels + 10 rounds of 100 = 1,050 labels (~9 % of the 12,000-image pool)
#   small:      10 initial labels + 10 rounds of 10  =   110 labels (~1 % of the pool)
#   imbalanced: the images subsampled by groups to 10 benign : 3 adenocarcinoma : 1 squamous
#               (benchmarks/imbalanced-10-3-1.yaml; ~5,600-image pool), 20 + 10 rounds of 20 = 220
#               labels; macro-F1 is the main figure
# Usage: PATH=$PWD/.venv/bin:$PATH bash benchmarks/robust_lung.sh large|small|imbalanced [OUT]
# Resumable: run it again after an interruption. The tables and curves are copied into docs/results/.
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
DATA=${DATA:-../shared/data/lc25000-lung}
SETTING=${1:?large, small or imbalanced}
OUT=${2:-runs/robust-$SETTING}
STRATEGIES=${STRATEGIES:-unisal,unisal+v1,unisal@frozen:supervised,margin,badge,coreset,cs_only,random}
case $SETTING in
  large) extra=(--initial 50 --budget 100 --rounds 10) ;;
  small) extra=(--initial 10 --budget 10 --rounds 10) ;;
  imbalanced) extra=(--config benchmarks/imbalanced-10-3-1.yaml --initial 20 --budget 20 --rounds 10 --main-metric macro_f1) ;;
  *) echo "unknown setting $SETTING: large, small or imbalanced" >&2; exit 2 ;;
esac
start=$(date +%s)
unisal benchmark --data "$DATA" --groups "$DATA/groups.csv" --preset cpu --strategies "$STRATEGIES" \
  --seeds "${SEEDS:-0-4}" "${extra[@]}" --out "$OUT"
echo "wall seconds of this call: $(( $(date +%s) - start ))" | tee -a "$OUT/wall_seconds.txt"
python benchmarks/collapse_report.py "$OUT" --out "$OUT/collapses.md" > /dev/null
DOCS=docs/results/robust-$SETTING
mkdir -p "$DOCS"
cp "$OUT"/{results.csv,summary.md,settings.md,curves.png,curves.svg,benchmark.yaml,wall_seconds.txt,collapses.md} "$DOCS/"
