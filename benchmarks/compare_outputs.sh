#!/usr/bin/env bash
# Issue 16's promise that a refactor changes nothing a command computes: the same runs at two
# commits, compared byte for byte. Runs, at BASE and at the working tree (or HEAD_REF), with one
# thread and a cache folder of their own each (so that no cache built by one serves the other):
#   1. a 3-round simulation of UniSAL with the frozen learner (the cpu preset),
#   2. a 2-round simulation with the fine-tune learner (a short schedule),
#   3. a benchmark of 3 strategies x 2 seeds (frozen learner),
# on a 600-image grouped subset of LC25000-lung (tests/lung_subset.py), both sides writing to the
# same --out paths (so that the commands the outputs record are the same), then compares
# rounds.csv, every file under queries/ and the benchmark's summary.md and results.csv byte for
# byte, less what is measured rather than computed (benchmarks/computed_outputs.py: the seconds
# columns of results.csv, the "Time per round" table of summary.md). Prints one line per
# compared file and exits 1 on any difference.
# Usage: PATH=$PWD/.venv/bin:$PATH bash benchmarks/compare_outputs.sh BASE [OUT] [HEAD_REF]
#   BASE: a commit before the change, e.g. d2963fc (the last commit before issue 16)
# About 15 minutes on a 2-core CPU (most of it the two feature caches).
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
BASE=${1:?a commit to compare with}
OUT=${2:-/tmp/unisal-compare}
HEAD_REF=${3:-}
DATA=${DATA:-../shared/data/lc25000-lung}
HERE=$(pwd)
[ -d "$DATA" ] || { echo "no data at $DATA (set DATA=...)" >&2; exit 2; }
rm -rf "$OUT"
mkdir -p "$OUT/base/src" "$OUT/head/src"
git archive "$BASE" src | tar -x -C "$OUT/base"
if [ -n "$HEAD_REF" ]; then git archive "$HEAD_REF" src | tar -x -C "$OUT/head"; else cp -r src/. "$OUT/head/src/"; fi
python - "$OUT/data" <<'EOF'
import sys
sys.path.insert(0, "tests")
from pathlib import Path
from lung_subset import write_lung_subset
write_lung_subset(Path(sys.argv[1]), per_class=200)
EOF
bench_common=(--data "$OUT/data/data.csv" --groups "$OUT/data/groups.csv" --threads 1)
common=("${bench_common[@]}" --quiet)
run="$OUT/runs"
for side in base head; do
  export PYTHONPATH="$OUT/$side/src" UNISAL_CACHE="$OUT/$side/cache"
  rm -rf "$run"
  python -m unisal simulate "${common[@]}" --preset cpu --initial 20 --budget 20 --rounds 3 --out "$run/frozen" > "$OUT/$side/frozen.log" 2>&1 || { cat "$OUT/$side/frozen.log"; exit 1; }
  python -m unisal simulate "${common[@]}" --preset cpu-finetune --epochs 2 --steps-per-epoch 5 \
    --initial 20 --budget 20 --rounds 2 --out "$run/finetune" > "$OUT/$side/finetune.log" 2>&1 || { cat "$OUT/$side/finetune.log"; exit 1; }
  python -m unisal benchmark "${bench_common[@]}" --preset cpu --strategies unisal,margin,random --seeds 0-1 \
    --initial 20 --budget 20 --rounds 2 --out "$run/benchmark" > "$OUT/$side/benchmark.log" 2>&1 || { cat "$OUT/$side/benchmark.log"; exit 1; }
  mv "$run" "$OUT/$side/runs"
  echo "$side: done"
done
unset PYTHONPATH UNISAL_CACHE
python "$HERE/benchmarks/computed_outputs.py" "$OUT/base/runs" "$OUT/head/runs"
