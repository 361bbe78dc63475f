#!/usr/bin/env bash
# A labelling project on a real slide, labelled from region annotations drawn by hand (issue 17):
# tile the TCGA slide, label its tiles from docs/slides/tcga-cr-7395-01a-01-ts1.regions.geojson
# (four coarse rectangles/quadrilaterals drawn by a developer, by eye, on the thumbnail: "nest" =
# dense pink cellular areas, "stroma" = pale fibrous bands; not a pathologist's annotation), run
# one round, and draw the heatmap and the tissue shares; then the GeoJSON export read back into a
# fresh project must give the same labels.
#
# Usage: bash benchmarks/slide_project_demo.sh [WORK]   (WORK default /tmp/unisal-slide-demo)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/unisal-slide-demo}
slide=${SLIDE:-$here/../shared/data/wsi/tcga-cr-7395-01a-01-ts1.svs}
regions=$here/docs/slides/tcga-cr-7395-01a-01-ts1.regions.geojson
rm -rf "$work" && mkdir -p "$work"
cd "$work"
export UNISAL_CACHE="$work/cache"
/usr/bin/time -f "init: %e s, peak %M KB" unisal project init proj --slides "$slide" --assume-mpp 0.5 --classes nest,stroma
unisal project import proj "$regions"
/usr/bin/time -f "round: %e s, peak %M KB" unisal project round proj
/usr/bin/time -f "heatmap: %e s, peak %M KB" unisal heatmap --project proj --slide tcga-cr-7395-01a-01-ts1 --out heatmap.png
unisal shares --project proj --out shares.csv
cat shares.csv
unisal project export proj --format geojson --out exported.geojson
unisal project export proj --format csv --out labels.csv
unisal project init again --slides "$slide" --assume-mpp 0.5 --classes nest,stroma
unisal project import again exported.geojson
unisal project export again --format csv --out labels-again.csv
python - <<'PY'
import csv
a = {(r["path"], r["label"]) for r in csv.DictReader(open("labels.csv"))}
b = {(r["path"], r["label"]) for r in csv.DictReader(open("labels-again.csv"))}
print(f"labels: {len(a)}; after export and re-import: {len(b)}; identical: {a == b}")
PY
echo "heatmap: $work/heatmap.png"
