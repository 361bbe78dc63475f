"""One UniSAL selection on a pool of a million items, on this CPU (issue 18, item 1).

A synthetic pool of recorded model outputs is written once under ``--work`` as memory-mapped
float16 arrays: two networks' logits (2, N, C), their 128-d contrastive embeddings (2, N, 128)
and 128-d backbone features (N, 128), clustered (``CLUSTERS`` clusters, each a class), with the
second network predicting another class on exactly ``--candidates`` items. A fresh process then
asks the registered strategy for ``--budget`` items through the query context, exactly as a
round does, with a learner that replays the recorded outputs batch by batch (``Replay``): what is
timed is the selection (scan, DUS, CS), not a network's forward pass. Memory is the process's
anonymous resident memory above the figure before the selection (``peak_memory``): the
memory-mapped inputs are not counted.

``--sklearn``: scikit-learn's k-means (``compact_selection(engine="sklearn")``) beside faiss's on
candidate sets of growing size, until one takes longer than ``--sklearn-limit`` seconds: the
seconds of both, the inertia of both (faiss's / scikit-learn's) and the coverage of the chosen
items (the pool's mean distance to its nearest chosen item, faiss's / scikit-learn's).

``--flat``: the same UniSAL selection with ``--candidates / 10`` candidates on a pool of N / 10
and of N: the peak at both (scoring memory flat in the pool size).

Prints one JSON line: ``seconds`` and ``peak_mb`` of the UniSAL selection, each strategy's,
``sklearn`` and ``flat`` where asked, the machine and the commit.

Usage:
    python benchmarks/bench_selection_1m.py                       # 1,000,000 items; ~1 GB on disk
    python benchmarks/bench_selection_1m.py --strategies unisal,cs_only,kmeans,coreset,badge,typiclust
    python benchmarks/bench_selection_1m.py --n 100000 --candidates 20000 --sklearn
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from peak_memory import CHILD_ENV, commit, peak_above

CLASSES, CLUSTERS, DIM, LABELLED = 9, 2_000, 128, 1_000
BATCH = 8_192  # items per replayed batch


def write_pool(folder: Path, n: int, candidates: int, seed: int = 0) -> Path:
    """The recorded outputs of a pool of ``n`` items (written once, with a completion record)."""
    done = folder / "complete.json"
    meta = {"n": n, "candidates": candidates, "seed": seed}
    if done.is_file() and json.loads(done.read_text()) == meta:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    disagree = np.zeros(n, bool)
    disagree[rng.choice(n, candidates, replace=False)] = True
    arrays = {
        name: np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=np.float16, shape=shape)
        for name, shape in (
            ("logits", (2, n, CLASSES)),
            ("embeddings", (2, n, DIM)),
            ("features", (n, DIM)),
        )
    }
    for lo in range(0, n, 50_000):
        hi = min(n, lo + 50_000)
        cluster = rng.integers(0, CLUSTERS, hi - lo)
        point = centres[cluster] + 0.35 * rng.standard_normal((hi - lo, DIM), dtype=np.float32)
        arrays["features"][lo:hi] = point
        label = cluster % CLASSES
        for k in range(2):
            emb = point + 0.05 * rng.standard_normal((hi - lo, DIM), dtype=np.float32)
            arrays["embeddings"][k, lo:hi] = emb / np.linalg.norm(emb, axis=1, keepdims=True)
            predicted = np.where(disagree[lo:hi] & (k == 1), (label + 1) % CLASSES, label)
            logits = rng.normal(size=(hi - lo, CLASSES)).astype(np.float32)
            logits[np.arange(hi - lo), predicted] += 8.0 + rng.random(hi - lo, dtype=np.float32)
            arrays["logits"][k, lo:hi] = logits
    for array in arrays.values():
        array.flush()
    done.write_text(json.dumps(meta))
    return folder


class Replay:
    """A learner that answers the query context from recorded outputs (memory-mapped): its
    ``predict_batches`` and ``predict``, with ``hidden`` the backbone features."""

    def __init__(self, folder: Path) -> None:
        self.arrays = {
            name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ("logits", "embeddings")
        }
        features = np.load(folder / "features.npy", mmap_mode="r")
        self.arrays["features"] = self.arrays["hidden"] = features[None]
        self.nets = [SimpleNamespace(proj_dim=DIM)]

    def _rows(self, name: str, idx: np.ndarray) -> np.ndarray:
        array = self.arrays[name]
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        rows = array[:, lo:hi] if hi - lo == len(idx) else array[:, idx]
        return np.asarray(rows, np.float32)

    def predict_batches(
        self, idx: np.ndarray, *, outputs: Sequence[str], desc: str = ""
    ) -> Iterator[tuple[int, Any]]:
        from unisal.train.evaluate import Predictions

        for start in range(0, len(idx), BATCH):
            rows = idx[start : start + BATCH]
            got = {name: self._rows(name, rows) for name in {"logits", *outputs}}
            yield start, Predictions(**got)

    def predict(self, idx: np.ndarray, *, outputs: Sequence[str], desc: str = "") -> Any:
        from unisal.train.evaluate import Predictions

        parts = [batch for _, batch in self.predict_batches(idx, outputs=outputs)]
        names = [
            name for name in ("logits", "embeddings", "features", "hidden") if name in {"logits", *outputs}
        ]
        return Predictions(
            **{name: np.concatenate([getattr(p, name) for p in parts], axis=1) for name in names}
        )


def measure_selection(strategy: str, folder: Path, budget: int, seed: int) -> dict[str, Any]:
    """One selection by ``strategy`` over the recorded pool: seconds, peak MB, what it found."""
    from unisal.query import QueryContext, create_strategy

    replay = Replay(folder)
    n = replay.arrays["logits"].shape[1]
    labelled = np.arange(LABELLED)
    labels = np.arange(LABELLED) % CLASSES
    ctx = QueryContext(
        np.arange(LABELLED, n), labelled, labels, budget, np.random.default_rng(seed),
        [f"class{k}" for k in range(CLASSES)], replay,  # type: ignore[arg-type]
    )  # fmt: skip
    chosen = create_strategy(strategy, {}, kmeans_n_init=3)
    import faiss  # noqa: F401  # what the selection imports is not counted as its memory
    import scipy.sparse.csgraph  # noqa: F401
    import sklearn.cluster  # noqa: F401
    import sklearn.neighbors  # noqa: F401

    selection, seconds, peak_mb = peak_above(lambda: chosen.select(ctx))
    return {
        "strategy": strategy,
        "n": n,
        "budget": budget,
        "seconds": round(seconds, 1),
        "peak_mb": round(peak_mb, 1),
        "n_candidates": selection.stats.get("n_candidates"),
        "unique": len(np.unique(selection.positions)),
    }


def compare_sklearn(folder: Path, m: int, budget: int, seed: int) -> dict[str, Any]:
    """faiss vs scikit-learn CS on the first ``m`` embeddings, each as ``compact_selection`` runs
    it (k-means, best of 3; then the one-to-one nearest items): seconds, inertia, coverage."""
    import time

    import faiss
    from scipy.optimize import linear_sum_assignment

    from unisal.query import faiss_kmeans
    from unisal.query.scores import kmeans_fit, pairwise_sq_distances

    x = np.ascontiguousarray(np.load(folder / "embeddings.npy", mmap_mode="r")[0, :m], np.float32)
    start = time.perf_counter()
    centres, _ = faiss_kmeans.kmeans_centres(x, budget, np.random.default_rng(seed), n_init=3)
    chosen_faiss = faiss_kmeans.nearest_one_to_one(centres, x)
    faiss_seconds = time.perf_counter() - start
    start = time.perf_counter()
    km = kmeans_fit(x, budget, np.random.default_rng(seed), 3, np.float32)
    _, chosen_sklearn = linear_sum_assignment(pairwise_sq_distances(km.cluster_centers_, x))
    sklearn_seconds = time.perf_counter() - start
    index = faiss.IndexFlatL2(DIM)

    def nearest(points: np.ndarray) -> np.ndarray:
        """(m,) squared distance of each item to the nearest of ``points``."""
        index.reset()
        index.add(np.ascontiguousarray(points, np.float32))
        return index.search(x, 1)[0][:, 0].astype(np.float64)

    def coverage(chosen: np.ndarray) -> float:
        return float(np.sqrt(np.maximum(nearest(x[chosen]), 0.0)).mean())

    return {
        "m": m,
        "budget": budget,
        "faiss_seconds": round(faiss_seconds, 1),
        "sklearn_seconds": round(sklearn_seconds, 1),
        "inertia_ratio": round(float(nearest(centres).sum() / km.inertia_), 4),
        "coverage_ratio": round(coverage(chosen_faiss) / coverage(chosen_sklearn), 4),
    }


def child(args: list[str], timeout: float | None = None) -> dict[str, Any] | None:
    """Run this script's ``--one`` in a fresh process; its JSON line, None past ``timeout``."""
    try:
        out = subprocess.run(
            [sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **CHILD_ENV},
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None
    if out.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(row), file=sys.stderr)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="pool items")
    parser.add_argument("--candidates", type=int, default=200_000, help="items the networks disagree on")
    parser.add_argument("--budget", type=int, default=1_000)
    parser.add_argument(
        "--strategies", default="unisal", help="comma-separated registered strategies ('': none)"
    )
    parser.add_argument("--sklearn", action="store_true", help="scikit-learn beside faiss on growing pools")
    parser.add_argument("--sklearn-limit", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--flat", action="store_true", help="the UniSAL peak at N / 10 and N")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "unisal-selection-1m"
    )
    parser.add_argument("--one", nargs=3, metavar=("KIND", "WHAT", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    if args.one:
        kind, what, folder = args.one
        if kind == "select":
            row = measure_selection(what, Path(folder), args.budget, args.seed)
        else:
            row = compare_sklearn(Path(folder), int(what), args.budget, args.seed)
        print(json.dumps(row))
        return
    common = ["--budget", str(args.budget), "--seed", str(args.seed), "--threads", str(args.threads)]
    print(f"writing the recorded outputs of {args.n} items ...", file=sys.stderr)
    folder = write_pool(args.work / f"pool-{args.n}-{args.candidates}", args.n, args.candidates)
    strategies = [s for s in args.strategies.split(",") if s]  # '': none (--sklearn alone)
    rows = {s: child([*common, "--one", "select", s, str(folder)]) for s in strategies}
    result: dict[str, Any] = {"n": args.n, "candidates": args.candidates, "budget": args.budget}
    if "unisal" in rows and rows["unisal"]:
        result |= {"seconds": rows["unisal"]["seconds"], "peak_mb": rows["unisal"]["peak_mb"]}
    result["strategies"] = rows
    if args.flat:
        flat = {}
        for n in (args.n // 10, args.n):
            small = write_pool(args.work / f"pool-{n}-{args.candidates // 10}", n, args.candidates // 10)
            flat[str(n)] = child([*common, "--one", "select", "unisal", str(small)])
        result["flat"] = flat
    if args.sklearn:
        compared = []
        for m in (10_000, 25_000, 50_000, 100_000, 200_000):
            if m > args.candidates:
                break
            row = child(
                [*common, "--one", "sklearn", str(m), str(folder)], timeout=1.5 * args.sklearn_limit + 120
            )
            if row is None:
                compared.append({"m": m, "sklearn_seconds": f"> {args.sklearn_limit}"})
                break
            compared.append(row)
            if row["sklearn_seconds"] > args.sklearn_limit:
                break
        result["sklearn"] = compared
    result |= {
        "threads": args.threads,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "commit": commit(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
