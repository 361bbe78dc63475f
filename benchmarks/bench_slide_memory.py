"""Peak memory of tiling a slide and reading its tiles, a 4,000 px vs a 40,000 x 40,000 px slide
(issue 17: memory bounded by a batch of tiles, not by the slide).

Writes two synthetic pyramidal TIFFs (tiled 256 px, zlib, levels 1, 1/4, 1/16, 0.5 mpp) with the
same pattern of tissue discs scaled to the slide: the large one tile by tile from a generator,
so that writing it never holds the slide either (level 0 alone would be 4.8 GB of pixels). Then,
for each slide, a fresh process runs ``unisal.data.tiling.tile_slides`` (thumbnail, tissue
mask, grid) and reads ``--read`` of its tiles through ``SlideTiles`` (as the decoded-image
cache does, one batch of 64 at a time); its peak resident memory (``ru_maxrss``) is reported.

Prints one JSON line: for each slide its pixels, file size, tiles found, seconds to tile, seconds
to read the tiles, and peak_mb; and ``peak_ratio`` (large / small).

Usage:
    python benchmarks/bench_slide_memory.py --work /tmp/slides     # writes ~1 GB, a few minutes
    python benchmarks/bench_slide_memory.py --work /tmp/s --side 12000   # a smaller "large" slide
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

TILE = 256
GLASS = 242
DISCS = [(0.3, 0.35, 0.18), (0.7, 0.6, 0.22), (0.45, 0.8, 0.1)]  # centre x, y, radius (x the side)


def tile_pixels(side: int, x0: int, y0: int, step: int, rng: np.random.Generator) -> np.ndarray:
    """One TILE x TILE tile of the level whose pixel is ``step`` level-0 px, at level-0 (x0, y0)."""
    ys = (y0 + np.arange(TILE) * step)[:, None] / side
    xs = (x0 + np.arange(TILE) * step)[None, :] / side
    out = np.full((TILE, TILE, 3), GLASS, np.uint8)
    for cx, cy, r in DISCS:
        inside = (xs - cx) ** 2 + (ys - cy) ** 2 < r**2
        out[inside] = (150 + rng.integers(-10, 10), 60, 150)
    return out


def level_tiles(side: int, step: int, seed: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    n = -(-side // step // TILE)
    for ty in range(n):
        for tx in range(n):
            yield tile_pixels(side, tx * TILE * step, ty * TILE * step, step, rng)


def write_slide(path: Path, side: int) -> None:
    """A square pyramidal TIFF of ``side`` px, written tile by tile."""
    import tifffile

    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for k, step in enumerate((1, 4, 16)):
            level = -(-side // step)
            tif.write(
                level_tiles(side, step, seed=k),
                shape=(level, level, 3),
                dtype=np.uint8,
                tile=(TILE, TILE),
                photometric="rgb",
                compression="zlib",
                subfiletype=1 if k else 0,
                resolution=(1e4 / (0.5 * step),) * 2,
                resolutionunit="CENTIMETER",
            )


CHILD = """
import json, resource, sys, time
from pathlib import Path
from unisal.data.slides import SlideTiles
from unisal.data.tiling import TilingSettings, tile_slides
from unisal.io import read_csv_rows
slide, out, n_read = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
start = time.perf_counter()
counts = tile_slides([slide], out, TilingSettings(size=224, mpp=0.5))
tiled = time.perf_counter() - start
_, rows = read_csv_rows(out)
ids = [f"{slide}::tile/{r['x']},{r['y']},{r['level']},{r['read_size']},{r['size']}" for r in rows]
step = max(1, len(ids) // n_read)
tiles = SlideTiles(tuple(ids[::step][:n_read]))
start = time.perf_counter()
for lo in range(0, len(tiles), 64):  # a batch of 64 in memory at a time, as the cache decodes
    batch = [tiles.read(i) for i in range(lo, min(lo + 64, len(tiles)))]
    assert all(b.shape == (224, 224, 3) for b in batch)
read = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"tiles": sum(counts.values()), "read": len(tiles), "tile_seconds": round(tiled, 2),
                  "read_seconds": round(read, 2), "peak_mb": round(peak, 1)}))
"""


def measure(slide: Path, work: Path, n_read: int) -> dict[str, object]:
    out = work / f"{slide.stem}-tiles.csv"
    out.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(slide), str(out), str(n_read)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="Folder for the slides (kept for reruns).")
    parser.add_argument("--side", type=int, default=40_000, help="The large slide's side (px).")
    parser.add_argument("--small", type=int, default=4_000, help="The small slide's side (px).")
    parser.add_argument("--read", type=int, default=512, help="Tiles read from each slide.")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {}
    for name, side in (("small", args.small), ("large", args.side)):
        slide = args.work / f"synthetic-{side}.tif"
        write_seconds = None
        if not slide.is_file():
            start = time.perf_counter()
            write_slide(slide, side)
            write_seconds = round(time.perf_counter() - start, 1)
        results[name] = {
            "pixels": f"{side} x {side}",
            "file_mb": round(slide.stat().st_size / 2**20, 1),
            "write_seconds": write_seconds,
            **measure(slide, args.work, args.read),
        }
    small, large = results["small"], results["large"]
    assert isinstance(small, dict) and isinstance(large, dict)
    results["peak_ratio"] = round(float(large["peak_mb"]) / float(small["peak_mb"]), 3)
    results["machine"] = f"{platform.processor() or platform.machine()}, {platform.python_version()}"
    print(json.dumps(results))


if __name__ == "__main__":
    main()
