"""A labelling project of a million tiles: how fast its store answers (issue 18, item 4).

Builds a project database of ``--n`` images (tile-like paths, 1 % held out) through the store's
own API, as ``project init`` writes it (``ProjectStore.create`` + ``add_images``), queues a batch
of ``--queue`` items as a round does (``replace_queue``), then measures what an annotator's
requests cost: ``lease_next`` then ``set_label`` for ``--labels`` items (the app's /api/next and
/api/label), per call; ``counts`` (the app's /api/state and ``project status``); the whole
``unisal project status`` command in a fresh process; and the full image list a round reads
(``images``). What is not measured here: a round's training and scoring at this size (that is
the learner's and the feature cache's, see bench_selection_1m.py) and hashing a million tile
files (tiles of slides are hashed per slide).

Prints one JSON line: seconds of the init, the queue and the image list, p50 / p99 milliseconds
of lease and label, and seconds of ``counts`` and of the status command.

Usage:
    python benchmarks/bench_project_1m.py                 # 1,000,000 images (~200 MB database)
    python benchmarks/bench_project_1m.py --n 100000
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
from peak_memory import commit

CLASSES = ["tumour", "stroma", "necrosis", "lymphocytes", "normal"]
CHUNK = 100_000


def build(folder: Path, n: int) -> float:
    """A project database of ``n`` tile images in ``folder``: its seconds."""
    from unisal.app.schema import DB_NAME
    from unisal.app.store import ProjectStore

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    start = time.perf_counter()
    store = ProjectStore.create(
        folder / DB_NAME, classes=CLASSES, settings={"image_root": str(folder / "tiles")}
    )
    for lo in range(0, n, CHUNK):
        rows = []
        for i in range(lo, min(n, lo + CHUNK)):
            slide = f"slide{i // 2000:04d}"
            rows.append((f"{slide}.svs#tile/{i % 2000 * 224}_{i // 2000 * 224}", f"{i:064x}", 50_000, slide,
                         "test" if i // 2000 % 100 == 0 else "train", 0))  # fmt: skip
        store.add_images(rows)
    seconds = time.perf_counter() - start
    store.close()
    return seconds


def percentile_ms(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(values) * 1000, q)), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queue", type=int, default=1_000, help="items queued by the round")
    parser.add_argument("--labels", type=int, default=500, help="lease + label calls timed")
    parser.add_argument(
        "--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "unisal-project-1m"
    )
    args = parser.parse_args()

    from unisal.app.schema import DB_NAME
    from unisal.app.store import ProjectStore

    init_seconds = build(args.work, args.n)
    store = ProjectStore.open(args.work / DB_NAME)
    rng = np.random.default_rng(0)
    train_ids = [
        int(r[0]) for r in store.conn.execute("SELECT id FROM images WHERE split = 'train' LIMIT 200000")
    ]
    chosen = rng.choice(train_ids, size=args.queue, replace=False)
    start = time.perf_counter()
    store.replace_queue(None, [{"image_id": int(i), "reason": "benchmark", "score": 0.5} for i in chosen])
    queue_seconds = time.perf_counter() - start
    lease, label = [], []
    for k in range(min(args.labels, args.queue)):
        start = time.perf_counter()
        item = store.lease_next("pathologist")
        lease.append(time.perf_counter() - start)
        assert item is not None, "the queue ran out"
        start = time.perf_counter()
        store.set_label(item.image_id, CLASSES[k % len(CLASSES)], "pathologist")
        label.append(time.perf_counter() - start)
    counts = []
    for _ in range(5):
        start = time.perf_counter()
        store.counts()
        counts.append(time.perf_counter() - start)
    start = time.perf_counter()
    images = store.images()
    images_seconds = time.perf_counter() - start
    store.close()
    start = time.perf_counter()
    status = subprocess.run(
        [sys.executable, "-m", "unisal", "project", "status", str(args.work)], capture_output=True, text=True
    )
    status_seconds = time.perf_counter() - start
    if status.returncode:
        sys.exit(f"project status failed:\n{status.stderr[-2000:]}")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "unisal", "--help"], capture_output=True, check=True)
    startup_seconds = time.perf_counter() - start
    print(json.dumps({
        "n": args.n,
        "images_listed": len(images),
        "init_seconds": round(init_seconds, 2),
        "database_mb": round((args.work / DB_NAME).stat().st_size / 2**20, 1),
        "queue_seconds": round(queue_seconds, 3),
        "lease_ms": {"p50": percentile_ms(lease, 50), "p99": percentile_ms(lease, 99)},
        "label_ms": {"p50": percentile_ms(label, 50), "p99": percentile_ms(label, 99)},
        "counts_ms": {"p50": percentile_ms(counts, 50), "max": percentile_ms(counts, 100)},
        "status_command_seconds": round(status_seconds, 2),
        "cli_startup_seconds": round(startup_seconds, 2),
        "images_seconds": round(images_seconds, 2),
        "first_status_line": status.stdout.splitlines()[0] if status.stdout else "",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "commit": commit(),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
