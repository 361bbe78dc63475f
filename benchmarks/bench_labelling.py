"""Concurrency of the labelling server: N annotator threads each lease and label M items.

Starts ``unisal serve`` on 127.0.0.1 over a fresh project of N x M tiny images whose queue
holds them all, then every thread repeats: POST /api/next (lease), POST /api/label. Reports,
as JSON: labels acknowledged and labels in the database (lost = acknowledged but absent),
items leased to two annotators at once, and the p50/p99/max latency of each call.

    python benchmarks/bench_labelling.py --threads 20 --posts 500 [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from unisal.app.project import init_project, open_project


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=20)
    parser.add_argument("--posts", type=int, default=500)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="unisal-bench-"))
    n = args.threads * args.posts
    images = work / "images"
    images.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((4, 4, 3), (i % 251, i // 251 % 251, 7), np.uint8)).save(
            images / f"t{i:05d}.png"
        )
    store = init_project(work / "project", images=images, classes=["A", "B", "C"])
    store.replace_queue(None, [{"image_id": r["id"], "reason": "benchmark"} for r in store.images()])
    port, token = free_port(), "bench"
    server = subprocess.Popen(
        [sys.executable, "-m", "unisal", "serve", str(work / "project"), "--port", str(port), "--token", token],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    server.stdout.readline()
    time.sleep(1.0)

    def call(path: str, body: dict[str, object]) -> tuple[float, dict[str, object] | None]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json", "X-Unisal-Token": token},
        )  # fmt: skip
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = json.loads(response.read())
        return time.perf_counter() - start, payload

    latency: dict[str, list[float]] = {"next": [], "label": []}
    leases: list[tuple[int, str]] = []
    acknowledged: dict[int, str] = {}
    lock = threading.Lock()

    def annotate(k: int) -> None:
        who = f"annotator{k}"
        for j in range(args.posts):
            t_next, item = call("/api/next", {"annotator": who})
            if item is None:
                break
            image_id = int(item["image_id"])  # type: ignore[arg-type]
            label = "ABC"[(k + j) % 3]
            t_label, result = call("/api/label", {"image_id": image_id, "label": label, "annotator": who})
            with lock:
                latency["next"].append(t_next)
                latency["label"].append(t_label)
                leases.append((image_id, who))
                if result and result.get("status") == "labelled":
                    acknowledged[image_id] = label

    start = time.perf_counter()
    threads = [threading.Thread(target=annotate, args=(k,)) for k in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    server.terminate()
    server.wait(10)
    labels = open_project(work / "project").labels()
    paths = {r["id"]: r["path"] for r in open_project(work / "project").images()}
    lost = [i for i, lab in acknowledged.items() if labels.get(paths[i], ("",))[0] != lab]
    owners = Counter(image_id for image_id, _ in set(leases))
    double = [i for i, c in owners.items() if c > 1]

    def stats(x: list[float]) -> dict[str, float]:
        ms = np.asarray(x) * 1000
        return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
                "max_ms": round(float(ms.max()), 2)}  # fmt: skip

    print(json.dumps({
        "threads": args.threads, "posts_per_thread": args.posts, "wall_seconds": round(wall, 1),
        "label_posts": len(latency["label"]), "acknowledged": len(acknowledged), "labels_in_database": len(labels),
        "lost_labels": len(lost), "double_assigned_leases": len(double),
        "latency_next": stats(latency["next"]), "latency_label": stats(latency["label"]),
        "requests_per_second": round(2 * len(latency["label"]) / wall, 1),
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores",
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
