#!/usr/bin/env bash
# Ray against the single process on a real subset of LC25000 lung (issue 18, item 3; docs/scale.md):
#   1. the feature cache (cpu preset: tf_efficientnet_lite0, d8 views, 112 px) built by
#      `unisal features` in one process and by 2 local Ray workers: wall time, and how far apart;
#   2. a 3-strategy x 2-seed benchmark, --threads 1, local and --executor ray: wall time, and
#      whether results.csv is the same (timing columns left out).
# Usage: PATH=$PWD/.venv/bin:$PATH bash benchmarks/ray_lung.sh [WORK] [PER_CLASS]
# Nothing else should run meanwhile (2 cores). Needs ../shared/data/lc25000-lung and ray.
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
WORK=${1:-/tmp/unisal-ray-lung}
PER_CLASS=${2:-200}
rm -rf "$WORK" && mkdir -p "$WORK"
python -c "from pathlib import Path; from tests.lung_subset import write_lung_subset; write_lung_subset(Path('$WORK/data'), $PER_CLASS)"
DATA=(--data "$WORK/data/data.csv" --groups "$WORK/data/groups.csv" --preset cpu)
printf 'features:\n  shard_images: 128\n' > "$WORK/shards.yaml"  # 5 shards of 600 images: work for 2 workers
seconds() { local s=$(date +%s.%N); "$@" > "$WORK/last.txt"; echo "$(date +%s.%N) - $s" | bc; }
echo "features, one process (2 threads): $(seconds unisal features "${DATA[@]}" --config "$WORK/shards.yaml" --cache-dir "$WORK/cache-local" --threads 2 --quiet) s"
cat "$WORK/last.txt"
echo "features, 2 Ray workers: $(seconds unisal features "${DATA[@]}" --config "$WORK/shards.yaml" --cache-dir "$WORK/cache-ray" --executor ray --quiet) s"
cat "$WORK/last.txt"
python - "$WORK" <<'PY'
import sys
from pathlib import Path
import numpy as np
work = Path(sys.argv[1])
(a,), (b,) = (list((work / c / "features").glob("*/features.npy")) for c in ("cache-local", "cache-ray"))
x, y = np.load(a).astype(np.float32), np.load(b).astype(np.float32)
ulp = np.spacing(np.abs(x).astype(np.float16)).astype(np.float32)
print(f"features: {x.shape}; identical values {np.mean(x == y):.4f}; max |diff| {np.abs(x - y).max():.3g}; "
      f"max |diff| in float16 steps {np.max(np.abs(x - y) / ulp):.2f}")
PY
BENCH=(--strategies random,entropy,unisal --seeds 0-1 --initial 10 --budget 10 --rounds 3 --threads 1 --no-reference)
echo "benchmark, local: $(seconds unisal benchmark "${DATA[@]}" --cache-dir "$WORK/cache-local" "${BENCH[@]}" --out "$WORK/local") s"
echo "benchmark, Ray: $(seconds unisal benchmark "${DATA[@]}" --cache-dir "$WORK/cache-local" "${BENCH[@]}" --executor ray --out "$WORK/ray") s"
python - "$WORK" <<'PY'
import csv, sys
from pathlib import Path
timing = {"train_seconds", "select_seconds"}
def rows(folder):
    with (Path(sys.argv[1]) / folder / "results.csv").open(newline="") as handle:
        return [{k: v for k, v in r.items() if k not in timing} for r in csv.DictReader(handle)]
local, ray = rows("local"), rows("ray")
print(f"results.csv: {len(local)} rows local, {len(ray)} on Ray; identical (timing columns left out): {local == ray}")
PY
