#!/usr/bin/env bash
# The screening of issue 15's training candidates (docs/robust-default.md,
# docs/results/robust-screening-small/): UniSAL's selection trained with each candidate alone
# (recipes of unisal.config.RECIPES on top of the v1 training) and two combinations, 3 seeds.
# It ran at commit 256155b, where the cpu preset was still the v1 training; at a later commit the
# arms below say +v1 to start from the same training.
# Usage: ARMS=... PATH=$PWD/.venv/bin:$PATH bash benchmarks/screen_robust.sh small|imbalanced|large OUT
#   the arms of the recorded run: ARMS="unisal+v1,unisal@frozen:supervised,unisal+v1+balanced,
#   unisal+v1+debias,unisal+v1+align,unisal+v1+freematch,unisal+v1+ema,unisal+v1+grow,unisal+v1+warm,
#   unisal+v1+guard,unisal+v1+balanced+debias+warm+guard,unisal+v1+balanced+align+warm+guard"
set -euo pipefail
export OMP_WAIT_POLICY=PASSIVE
D=../shared/data/lc25000-lung
SETTING=$1; OUT=$2; shift 2
case $SETTING in
  small) sizes=(--initial 10 --budget 10 --rounds 10); extra=() ;;
  imbalanced) sizes=(--initial 20 --budget 20 --rounds 10); extra=(--config benchmarks/imbalanced-10-3-1.yaml) ;;
  large) sizes=(--initial 50 --budget 100 --rounds 10); extra=() ;;
esac
start=$(date +%s)
unisal benchmark --data $D --groups $D/groups.csv --preset cpu "${extra[@]}" --strategies "$ARMS" --seeds "${SEEDS:-0-2}" "${sizes[@]}" --out "$OUT"
echo "wall seconds of this call: $(( $(date +%s) - start ))" | tee -a "$OUT/wall_seconds.txt"
