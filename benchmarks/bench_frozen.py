"""Speed of the frozen learner: feature-cache build, then a whole simulation, as JSON.

    .venv/bin/python benchmarks/bench_frozen.py --data ../shared/data/lc25000-lung \
        --groups ../shared/data/lc25000-lung/groups.csv --out runs/bench-frozen

1. ``unisal features`` builds the multi-view cache (or finds it built): its build time and
   images/s are those recorded when it was built (its ``complete.json``), as the cache is built once.
2. ``unisal simulate`` (frozen ``cpu`` preset; 30 initial labels + 10 rounds of 30 unless told
   otherwise) runs in a fresh process with the cache in place; its wall time includes start-up,
   reading the data, every training, test evaluation, pool scoring and selection.

Prints one JSON object; exits 1 when the simulation takes longer than ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from unisal.run_folder import read_round_rows


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    return next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine()
    )


def unisal(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "unisal", *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--groups")
    parser.add_argument("--out", default="runs/bench-frozen")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--initial", type=int, default=30)
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--strategy", default="unisal")
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    data = ["--data", args.data] + (["--groups", args.groups] if args.groups else [])
    start = time.perf_counter()
    features = unisal("features", *data, "--quiet")
    features_seconds = time.perf_counter() - start
    cache_line = features.stdout.strip().splitlines()[-1]

    out = Path(args.out) / f"{args.strategy}-seed{args.seed}"
    if out.exists():
        sys.exit(f"{out} exists; remove it or pass another --out")
    start = time.perf_counter()
    unisal(
        "simulate", *data, "--preset", "cpu", "--strategy", args.strategy, "--seed", str(args.seed),
        "--config", str(Path(__file__).with_name("val-fraction-10.yaml")),  # the docs' numbers: 10 % validation
        "--initial", str(args.initial), "--budget", str(args.budget), "--rounds", str(args.rounds),
        "--out", str(out), "--quiet",
    )  # fmt: skip
    wall = time.perf_counter() - start
    rounds = read_round_rows(out)
    result = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, threads {torch.get_num_threads()}",
        "feature_cache": cache_line,
        "feature_cache_command_seconds": round(features_seconds, 1),
        "simulation": {
            "strategy": args.strategy,
            "seed": args.seed,
            "labels": f"{args.initial} + {args.rounds} x {args.budget}",
            "wall_seconds": round(wall, 1),
            "train_seconds_per_round": [float(r["train_seconds"]) for r in rounds],
            "select_seconds_per_round": [float(r["select_seconds"]) for r in rounds if r["select_seconds"]],
            "accuracy_per_round": [float(r["accuracy"]) for r in rounds],
            "n_labeled": [int(r["n_labeled"]) for r in rounds],
        },
        "max_seconds": args.max_seconds,
    }
    print(json.dumps(result, indent=2))
    if wall > args.max_seconds:
        sys.exit(1)


if __name__ == "__main__":
    main()
