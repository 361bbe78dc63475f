"""How much a second busy PyTorch process slows a run, before and after the thread settings.

Workload: ``unisal simulate`` (cpu preset, frozen learner) on synthetic tiles, 2 rounds, its
feature cache built beforehand. Competitor: another Python process doing PyTorch matrix
products with PyTorch's defaults (all cores, OpenMP's default active waiting), as a second run
would. Settings:
  before: what unisal did until now: all cores and OpenMP's active spin-waiting
          (OMP_WAIT_POLICY=ACTIVE, --threads <cores>);
  after:  the defaults now: passive waiting and the cores the competitor leaves free.
Prints JSON: wall seconds of the run alone and with the competitor, for each setting.

    python benchmarks/bench_threads.py --work DIR [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

COMPETITOR = """
import torch
a = torch.randn(600, 600)
while True:
    a = (a @ a).clamp_(-1, 1)
"""


def tiles(root: Path) -> Path:
    rng = np.random.default_rng(0)
    palette = [(220, 40, 40), (40, 180, 60), (40, 70, 220)]
    for k, name in enumerate(("red", "green", "blue")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(60):
            pixels = np.clip(np.array(palette[k]) + rng.integers(-60, 61, (64, 64, 3)), 0, 255).astype(
                np.uint8
            )
            Image.fromarray(pixels).save(root / name / f"{name}_{i}.png")
    return root


def run(data: Path, work: Path, name: str, env: dict[str, str], extra: list[str]) -> float:
    out = work / "runs" / name
    shutil.rmtree(out, ignore_errors=True)
    args = [sys.executable, "-m", "unisal", "simulate", "--data", str(data), "--cache-dir", str(work / "cache"),
            "--initial", "12", "--budget", "12", "--rounds", "2", "--quiet", "--out", str(out), *extra]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(args, env=env, check=True, capture_output=True)
    return round(time.perf_counter() - start, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    data = tiles(args.work / "tiles")
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    cores = os.cpu_count() or 1
    settings = {
        "before": ({**base, "OMP_WAIT_POLICY": "ACTIVE"}, ["--threads", str(cores)]),
        "after": (base, []),
    }
    run(data, args.work, "warm-up", base, [])  # builds the caches once
    results: dict[str, dict[str, list[float]]] = {}
    for name, (env, extra) in settings.items():
        results[name] = {"alone": [], "with_one_busy_process": []}
        for r in range(args.repeats):
            results[name]["alone"].append(run(data, args.work, f"{name}-alone-{r}", env, extra))
            competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR], env=base)
            time.sleep(2.0)
            try:
                results[name]["with_one_busy_process"].append(
                    run(data, args.work, f"{name}-busy-{r}", env, extra)
                )
            finally:
                competitor.kill()
                competitor.wait()
    print(json.dumps({"cores": cores, "machine": platform.machine(), "seconds": results}, indent=2))


if __name__ == "__main__":
    main()
