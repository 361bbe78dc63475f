"""A round of a labelling project of a million slide tiles (issue 18, item 4: "init, round, lease/label").

Builds a project of ``--n`` tiles over ``--slides`` synthetic pyramidal TIFFs through the store's
own API (as bench_project_1m.py does; the last slide is the held-out one), labels ``--labels``
pool tiles and as many held-out ones, and runs two rounds with ``run_round`` exactly as
``unisal project round`` does (frozen learner, UniSAL, budget ``--budget``), labelling the first
round's queue in between. The project's pixels are streamed (``data.pixel_cache: auto`` chooses it:
the decoded images would be 150 GB), and its feature cache is **synthetic**: extracting a million
tiles takes about 5 hours on this 2-core CPU (bench_extraction.py gives the rate), so the cache
of EfficientNet-Lite0's 1,280-d features of one view (``identity``) is written under the key the
round computes, each tile's features drawn around its class's centre. What is timed is everything
else a round does at this size: the project's items and keys, the view means, training, the
hold-out, the stop set, scoring the million and choosing, the queue and the scores file.

Prints one JSON line: the seconds of the init, of writing the synthetic cache, of each round (and
its accuracy, labels, queue, and the seconds of each task it reports: training, scoring, ...), the
peak anonymous memory of each round above its start, and the machine and commit.

    python benchmarks/bench_project_round_1m.py [--n 1000000] [--budget 1000] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from peak_memory import commit, peak_above

CLASSES = ["tumour", "stroma", "necrosis", "lymphocytes", "normal"]
DIM = 1280  # EfficientNet-Lite0's pooled features
CHUNK = 50_000


def make_slides(folder: Path, n: int) -> list[Path]:
    """``n`` copies of one small synthetic pyramid (their own files: each is hashed as a slide)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.slides.synthetic import pyramid

    first = pyramid(folder / "slide_000.tif")
    slides = [first]
    for k in range(1, n):
        slides.append(folder / f"slide_{k:03d}.tif")
        shutil.copy(first, slides[-1])
    return slides


def tile_rows(slides: list[Path], n: int) -> list[tuple[str, str, int, str, str, int | None]]:
    """The images table's rows: ``n`` tiles spread over the slides; the last slide held out."""
    from unisal.app.files import file_stamp
    from unisal.data.slides import tile_id

    per_slide = -(-n // len(slides))
    side = int(np.ceil(np.sqrt(per_slide)))
    rows = []
    for i in range(n):
        s, k = divmod(i, per_slide)
        slide = slides[s]
        st = os.stat(slide)
        x, y = (k % side) * 224, (k // side) * 224
        split = "test" if s == len(slides) - 1 else "train"
        rows.append((tile_id(slide.name, x, y, 0, 224, 224), f"{i:064x}", st.st_size, slide.name, split,
                     file_stamp(st)))  # fmt: skip
    return rows


def write_features(cache_dir: Path, key: str, n: int, classes: np.ndarray, seed: int) -> float:
    """A complete feature cache (n, 1, DIM) float16 under ``key``: each row around its class's
    centre. Its seconds."""
    from unisal.data.cache import sample_checksum
    from unisal.io import folder_marker, write_json_atomic

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    # centres about 5 noise widths apart: classes overlap a little, so the two networks disagree somewhere
    centres = rng.standard_normal((len(CLASSES), DIM)).astype(np.float32) * 0.1
    folder = cache_dir / "features" / key
    folder.mkdir(parents=True, exist_ok=True)
    array = np.lib.format.open_memmap(folder / "features.npy", mode="w+", dtype=np.float16, shape=(n, 1, DIM))
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        noise = rng.standard_normal((hi - lo, DIM), dtype=np.float32)
        array[lo:hi, 0] = centres[classes[lo:hi]] + noise
    array.flush()
    marker = {"key": key, "shape": [n, 1, DIM], "backbone": "tf_efficientnet_lite0", "views": "identity",
              "synthetic": True, "unreadable": [], "sample_sha1": sample_checksum(array)}  # fmt: skip
    del array
    write_json_atomic(folder_marker(folder), marker, indent=2)
    return time.perf_counter() - start


class StageTimer:
    """Seconds of each task a round reports as events (training, co-training, scoring, ...), by the
    first word of its name; what no task covers (the items and keys, the view means, the choice,
    the writes) is the rest."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._began: dict[int, float] = {}

    def __call__(self, event: object) -> None:
        from unisal.events import Progress

        if isinstance(event, Progress) and event.stage == "start":
            self._began[event.task] = time.perf_counter()
        elif isinstance(event, Progress) and event.stage == "end" and event.task in self._began:
            name = event.name.split(" ")[0]
            spent = time.perf_counter() - self._began.pop(event.task)
            self.seconds[name] = round(self.seconds.get(name, 0.0) + spent, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--slides", type=int, default=20)
    parser.add_argument(
        "--labels", type=int, default=1_000, help="pool labels before round 1, and hold-out labels"
    )
    parser.add_argument("--budget", type=int, default=1_000)
    parser.add_argument(
        "--pixel-cache", default="auto", help="auto streams a million tiles; stream for small --n"
    )
    parser.add_argument(
        "--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "unisal-round-1m"
    )
    args = parser.parse_args()

    from unisal.app.rounds import ProjectSettings, project_data, run_config, run_round
    from unisal.app.schema import DB_NAME
    from unisal.app.store import ProjectStore
    from unisal.events import subscribed
    from unisal.models.feature_cache import feature_cache_key
    from unisal.models.features import ViewSpec

    shutil.rmtree(args.work, ignore_errors=True)
    root, folder, cache = args.work / "slides", args.work / "project", args.work / "cache"
    root.mkdir(parents=True)
    folder.mkdir()
    slides = make_slides(root, args.slides)
    settings = ProjectSettings(
        strategy="unisal", budget=args.budget, device="cpu",
        config={"data": {"image_size": 224, "cache_dir": str(cache), "pixel_cache": args.pixel_cache}, "learner": {"name": "frozen"},
                "features": {"views": "identity"}},
    )  # fmt: skip
    start = time.perf_counter()
    store = ProjectStore.create(
        folder / DB_NAME, classes=CLASSES, settings={"image_root": str(root), **asdict(settings)}
    )
    rows = tile_rows(slides, args.n)
    for lo in range(0, args.n, 100_000):
        store.add_images(rows[lo : lo + 100_000])
    init_seconds = time.perf_counter() - start

    # each tile's class (the oracle), and the labels a lab starts from
    rng = np.random.default_rng(0)
    classes = rng.integers(0, len(CLASSES), size=args.n)
    train = [i for i, r in enumerate(rows) if r[4] == "train"]
    test = [i for i, r in enumerate(rows) if r[4] == "test"]
    first = np.concatenate(
        [rng.choice(train, args.labels, replace=False), rng.choice(test, args.labels, replace=False)]
    )
    store.import_labels([(rows[i][0], CLASSES[classes[i]]) for i in first], "oracle")

    cfg = run_config(settings, str(root))
    data, _ = project_data(store, cfg)  # what the round computes: the items' key, without pixels
    if not data.store.streamed:
        sys.exit("the project's pixels are not streamed: pass --pixel-cache stream below 50,000 tiles")
    key = feature_cache_key(data.store.content_key(), cfg.model, ViewSpec.from_config(cfg.features))
    cache_seconds = write_features(cache, key, args.n, classes, seed=1)
    del data

    result: dict[str, object] = {
        "n": args.n, "slides": args.slides, "budget": args.budget, "init_seconds": round(init_seconds, 2),
        "synthetic_cache_seconds": round(cache_seconds, 2),
    }  # fmt: skip
    path_index = {r[0]: i for i, r in enumerate(rows)}
    for round_ in (1, 2):
        timing = StageTimer()
        with subscribed(timing):
            record, seconds, peak_mb = peak_above(lambda: run_round(folder))
        metrics = record.get("metrics", record)
        queued = [row["path"] for row in store.conn.execute(
            "SELECT images.path FROM queue JOIN images ON images.id = queue.image_id")]  # fmt: skip
        result[f"round_{round_}"] = {
            "seconds": round(seconds, 2), "peak_mb": round(peak_mb, 1), "queued": len(queued),
            "accuracy": round(float(metrics.get("accuracy", float("nan"))), 4),
            "labels": int(metrics.get("n_labels", 0)),
            "stages": {**timing.seconds, "the rest": round(seconds - sum(timing.seconds.values()), 2)},
        }  # fmt: skip
        print(json.dumps({"round": round_, **result[f"round_{round_}"]}), file=sys.stderr, flush=True)
        store.import_labels([(p, CLASSES[classes[path_index[p]]]) for p in queued], "oracle")
    store.close()
    result |= {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "commit": commit(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
