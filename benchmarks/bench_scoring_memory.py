"""Peak memory of one round's scoring, pool of N vs 10 N items (issue 16, item 3).

For each pool size a synthetic, memory-mapped feature cache (clustered float16, 8 views x 1280,
like tf_efficientnet_lite0's d8 cache) is written once under --work; then, for each strategy, a
fresh process trains the frozen learner's two heads briefly on 60 labels (the cpu preset's
learner, short schedule) and asks the strategy for a budget of 20 through the query context, as
a round does. Memory is the process's anonymous resident memory (``RssAnon``; file-backed pages
of the memory-mapped inputs are not counted), sampled every 2 ms during the selection, less the
same figure just before it (after ``malloc_trim``; glibc's mmap threshold fixed at 128 KiB,
``CHILD_ENV``): the memory scoring needs above its inputs.

Prints one JSON line: ``peak_ratio`` (the worst ratio over entropy, margin and UniSAL of the peak at
10 N to the peak at N; target <= 1.3), each strategy's peak in MB at both sizes and its seconds.
``unisal+explore`` (the cpu preset's exploration: k-center greedy in the backbone features of
the whole pool, which its method needs at once) is measured beside, not in the ratio.

Usage:
    python benchmarks/bench_scoring_memory.py --quick     # 2,000 vs 20,000 items (a few minutes)
    python benchmarks/bench_scoring_memory.py             # 20,000 vs 200,000 items (writes ~5 GB)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from peak_memory import CHILD_ENV, commit, peak_above

STRATEGIES = {  # label -> (strategy, run-wide query values: query.explore)
    "entropy": ("entropy", {}),
    "margin": ("margin", {}),
    "unisal": ("unisal", {"explore": 0.0}),
    "unisal+explore": ("unisal", {"explore": 0.1}),
}
IN_RATIO = ("entropy", "margin", "unisal")
VIEWS, DIM, CLASSES, LABELS_PER_CLASS, BUDGET = 8, 1280, 3, 20, 20
NOISE = 30.0  # of an image's point around its class centre: the two heads disagree on a few percent


def write_features(folder: Path, n: int, seed: int = 0) -> Path:
    """(n, VIEWS, DIM) float16 features of CLASSES clusters (class k: rows with i % CLASSES == k),
    each view a noisy copy of its image's point; written once, with a completion record."""
    path, done = folder / "features.npy", folder / "complete.json"
    if done.is_file() and json.loads(done.read_text()).get("n") == n:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLASSES, DIM)).astype(np.float32)
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, VIEWS, DIM))
    for start in range(0, n, 5000):
        stop = min(n, start + 5000)
        points = centres[np.arange(start, stop) % CLASSES] + NOISE * rng.standard_normal(
            (stop - start, DIM), dtype=np.float32
        )
        noise = 0.3 * rng.standard_normal((stop - start, VIEWS, DIM), dtype=np.float32)
        array[start:stop] = (points[:, None] + noise).astype(np.float16)
    array.flush()
    del array
    done.write_text(json.dumps({"n": n}))
    return path


def measure_one(label: str, features_path: Path, threads: int) -> dict[str, Any]:
    """Train the heads, then select with strategy ``label``: peak MB above the inputs, seconds."""
    import torch

    from unisal.config import build_config
    from unisal.data.cache import ImageStore
    from unisal.data.catalogue import Catalogue
    from unisal.data.items import FileItems
    from unisal.data.prepare import PreparedData
    from unisal.learners import create_learner, frozen
    from unisal.models.features import FeatureStore
    from unisal.query import QueryContext, create_strategy
    from unisal.train.fit import TrainingSets

    torch.set_num_threads(threads)
    array = np.load(features_path, mmap_mode="r")
    n = len(array)
    info = {"sample_sha1": f"synthetic-{n}"}
    beside = (
        [features_path.parent] if "folder" in FeatureStore.__dataclass_fields__ else []
    )  # before issue 16: none
    store = FeatureStore(array, np.arange(n), info, *beside)
    cfg = build_config(
        "cpu", {"learner": {"name": "frozen"}, "train": {"epochs": 2, "steps_per_epoch": 15}, "seed": 0}
    )
    labels = np.arange(n) % CLASSES
    names = [f"class{k}" for k in range(CLASSES)]
    catalogue = Catalogue(
        FileItems(tuple(f"synthetic/{i}" for i in range(n))), labels, np.arange(n), names, "synthetic"
    )
    data = PreparedData(
        catalogue,
        ImageStore(np.zeros((n, 1, 1, 3), np.uint8), np.arange(n), "synthetic"),
        np.full(n, "train"),
        [],
    )
    frozen.build_feature_cache = lambda *args, **kwargs: store  # type: ignore[assignment]  # the synthetic cache
    learner = create_learner(cfg, CLASSES, torch.device("cpu"))
    learner.prepare(data)
    labelled = np.arange(LABELS_PER_CLASS * CLASSES)
    pool = np.arange(len(labelled), n)
    learner.fit(TrainingSets(labelled, labels[labelled], pool), init_seed=0, seed=1)
    learner.predict(labelled)  # the view means (mean.npy) exist before the measurement
    strategy_name, params = STRATEGIES[label]
    strategy = create_strategy(strategy_name, {}, kmeans_n_init=cfg.query.kmeans_n_init, **params)
    ctx = QueryContext(pool, labelled, labels[labelled], BUDGET, np.random.default_rng(0), names, learner)

    selection, seconds, peak_mb = peak_above(lambda: strategy.select(ctx))
    return {
        "strategy": label,
        "n": n,
        "peak_mb": round(peak_mb, 1),
        "seconds": round(seconds, 2),
        "n_candidates": selection.stats.get("n_candidates"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 vs 20,000 items")
    parser.add_argument("--n", type=int, help="the smaller pool (default 20,000; --quick 2,000)")
    parser.add_argument(
        "--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "unisal-scoring-memory"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", nargs=2, metavar=("STRATEGY", "FEATURES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one[0], Path(args.one[1]), args.threads)))
        return
    small = args.n or (2_000 if args.quick else 20_000)
    rows: list[dict[str, Any]] = []
    for n in (small, 10 * small):
        print(f"writing {n} x {VIEWS} x {DIM} synthetic features ...", file=sys.stderr)
        path = write_features(args.work / f"pool-{n}", n)
        for label in STRATEGIES:
            out = subprocess.run(
                [sys.executable, __file__, "--threads", str(args.threads), "--one", label, str(path)],
                capture_output=True,
                text=True,
                env={**os.environ, **CHILD_ENV},
            )
            if out.returncode:
                sys.exit(f"{label} at {n} failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr)
    peak = {
        label: {str(r["n"]): r["peak_mb"] for r in rows if r["strategy"] == label} for label in STRATEGIES
    }
    seconds = {
        label: {str(r["n"]): r["seconds"] for r in rows if r["strategy"] == label} for label in STRATEGIES
    }
    ratios = {
        label: round(peak[label][str(10 * small)] / max(peak[label][str(small)], 0.1), 3)
        for label in STRATEGIES
    }
    print(
        json.dumps(
            {
                "peak_ratio": max(ratios[label] for label in IN_RATIO),
                "ratios": ratios,
                "peak_mb": peak,
                "seconds": seconds,
                "n": [small, 10 * small],
                "budget": BUDGET,
                "threads": args.threads,
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                "commit": commit(),
            }
        )
    )


if __name__ == "__main__":
    main()
