"""A labelling project from start to finish on real tiles, through the HTTP API of a live server.

For each data set: init a project over unlabelled images; run a round (cold start: a random
batch); label the queue through the API with the true classes (the folder names); run a
trained round (timed); label that queue too; export Label Studio JSON; import it into a fresh
project; check that the labels are identical. Prints one JSON record per data set.

    python benchmarks/project_roundtrip.py --work DIR [--lung-per-class 100] [--budget 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path

from unisal.app.project import export_labels, import_labels, init_project, open_project
from unisal.app.rounds import ProjectSettings, run_round

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lung_subset(folder: Path, per_class: int) -> Path:
    """Symbolic links to the first ``per_class`` images of each LC25000-lung class."""
    for cls in ("lung_aca", "lung_n", "lung_scc"):
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for path in sorted((SHARED / "lc25000-lung" / cls).iterdir())[:per_class]:
            link = folder / cls / path.name
            if not link.exists():
                link.symlink_to(path)
    return folder


def label_queue(port: int, token: str, annotator: str, images: dict[int, str]) -> int:
    """Label every queued image with its true class (its folder) through the API."""

    def call(path: str, body: dict[str, object]) -> dict[str, object] | None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json", "X-Unisal-Token": token},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    n = 0
    while (item := call("/api/next", {"annotator": annotator})) is not None:
        truth = images[int(item["image_id"])].split("/")[0]  # type: ignore[arg-type]
        result = call("/api/label", {"image_id": item["image_id"], "label": truth, "annotator": annotator})
        assert result is not None and result["status"] == "labelled", result
        n += 1
    return n


def roundtrip(name: str, images: Path, classes: list[str], work: Path, budget: int) -> dict[str, object]:
    folder = work / name / "project"
    settings = ProjectSettings(budget=budget, config={"data": {"cache_dir": str(work / "cache")}})
    start = time.perf_counter()
    store = init_project(folder, images=images, classes=classes, settings=asdict(settings))
    paths = {r["id"]: r["path"] for r in store.images()}
    record: dict[str, object] = {
        "data": name,
        "images": len(paths),
        "init_seconds": round(time.perf_counter() - start, 2),
    }
    port, token = free_port(), "roundtrip"
    server = subprocess.Popen(
        [sys.executable, "-m", "unisal", "serve", str(folder), "--port", str(port), "--token", token],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    server.stdout.readline()
    time.sleep(1.0)
    try:
        rounds = []
        for k in range(2):
            start = time.perf_counter()
            result = run_round(folder)
            seconds = round(time.perf_counter() - start, 2)
            labelled = label_queue(port, token, "annotator", paths)
            rounds.append(
                {"round": k + 1, "seconds": seconds, "metrics": result["metrics"], "labelled_after": labelled}
            )
        record["rounds"] = rounds
    finally:
        server.terminate()
        server.wait(10)
    store = open_project(folder)
    export = work / name / "labels.json"
    record["exported"] = export_labels(store, export, "labelstudio")
    fresh = init_project(work / name / "fresh", images=images, classes=classes, settings=asdict(settings))
    record["imported"] = import_labels(fresh, export)
    original = {p: v[0] for p, v in store.labels().items()}
    copied = {p: v[0] for p, v in fresh.labels().items()}
    record["labels_identical"] = original == copied
    record["labels_correct"] = sum(label == path.split("/")[0] for path, label in original.items())
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--lung-per-class", type=int, default=100)
    parser.add_argument("--budget", type=int, default=30)
    args = parser.parse_args()
    kather = SHARED / "crc-samples" / "kather2016"
    lung = lung_subset(args.work / "lung-images", args.lung_per_class)
    records = [
        roundtrip(
            "crc-samples-kather2016",
            kather,
            sorted(p.name for p in kather.iterdir() if p.is_dir()),
            args.work,
            8,
        ),
        roundtrip("lc25000-lung-subset", lung, ["lung_aca", "lung_n", "lung_scc"], args.work, args.budget),
    ]
    for r in records:
        r["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
        print(json.dumps(r))


if __name__ == "__main__":
    main()
