"""docs/app-screenshot.png: the labelling page on real Kather 2016 tiles after real rounds.

Builds a project over ../shared/data/crc-samples/kather2016 (24 tiles, 8 classes), seeds two
labels per class from the folder names, runs two rounds (the second after labelling the first
queue), starts ``unisal serve`` and photographs the page in Debian's chromium (Playwright).

    python benchmarks/app_screenshot.py --work DIR [--out docs/app-screenshot.png]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from playwright.sync_api import sync_playwright

from unisal.app.project import init_project, open_project
from unisal.app.rounds import ProjectSettings, run_round

KATHER = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "crc-samples" / "kather2016"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/app-screenshot.png"))
    args = parser.parse_args()
    classes = sorted(p.name for p in KATHER.iterdir() if p.is_dir())
    labels = args.work / "labels.csv"
    args.work.mkdir(parents=True, exist_ok=True)
    seeds = [f"{c}/{p.name},{c}" for c in classes for p in sorted((KATHER / c).iterdir())[:2]]
    labels.write_text("path,label\n" + "\n".join(seeds) + "\n")
    folder = args.work / "project"
    settings = ProjectSettings(budget=4, config={"data": {"cache_dir": str(args.work / "cache")}})
    init_project(folder, images=KATHER, classes=classes, labels_csv=labels, settings=asdict(settings))
    run_round(folder)
    store = open_project(folder)
    for _ in range(2):  # label two of the queue (the truth is the folder), leave the rest for the photo
        item = store.lease_next("dr-screenshot")
        assert item is not None
        store.set_label(item.image_id, item.path.split("/")[0], "dr-screenshot")
    run_round(folder)
    port = 8899
    server = subprocess.Popen(
        [sys.executable, "-m", "unisal", "serve", str(folder), "--port", str(port), "--token", "screenshot"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=shutil.which("chromium"), headless=True, args=["--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1180, "height": 800})
            page.goto(f"http://127.0.0.1:{port}/?token=screenshot")
            page.fill("#annotator", "dr-screenshot")
            page.keyboard.press("Tab")
            page.wait_for_selector("#patch[src]")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(args.out))
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
