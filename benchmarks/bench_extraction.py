"""The feature cache built three ways, each in a fresh process (issue 18, items 2 and 5):

* ``keep``: the images decoded into the decoded-image cache first, features extracted from it
  (the path before issue 18, and still the fine-tune learner's);
* ``stream``: features extracted straight from the files, decoded by Pillow threads while the
  backbone runs (``--pixel-cache stream``): no image cache;
* ``device``: the same, the JPEG files decoded in batches on the extraction device
  (``--decoder device``: nvJPEG on CUDA).

    python benchmarks/bench_extraction.py [--data DATA.csv|FOLDER] [--images 1500] [--device cpu|cuda]
        [--image-size 112] [--batch-size 64] [--views d8] [--modes keep,stream,device] [--workers 4]

Without ``--data`` it takes the first ``--images`` LC25000-lung tiles from ../shared/data (whole
groups, balanced), else writes that many synthetic JPEG tiles (``--source-size`` px) to a
temporary folder, so that it runs on a machine without the data (a GPU machine). Prints one JSON
line per mode: seconds (the whole preparation: hashing, decoding, extraction), images/s and views/s,
the peak anonymous memory above the start (``RssAnon``: memory-mapped files not counted), the bytes
the cache folder holds afterwards, and how far the features are from ``keep``'s (the largest
difference in float16 steps, 0 where identical; the mean relative difference). Run it alone on
the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parent
ROOT = BENCHMARKS.parent
MODES = {"keep": {"pixel_cache": "keep"}, "stream": {"pixel_cache": "stream"},
         "device": {"pixel_cache": "stream", "decoder": "device"}}  # fmt: skip


def synthetic_jpegs(folder: Path, n: int, size: int) -> Path:
    """``n`` JPEG tiles of three colour classes with noise, in class folders; the folder."""
    from PIL import Image

    rng = np.random.default_rng(0)
    palette = [(200, 80, 160), (120, 60, 170), (230, 180, 200)]
    for i in range(n):
        cls = i % 3
        tile = np.clip(np.asarray(palette[cls]) + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
        (folder / f"c{cls}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(tile).save(folder / f"c{cls}" / f"tile_{i:07d}.jpg", quality=90)
    return folder


def data_source(args: argparse.Namespace, work: Path) -> tuple[str, str | None]:
    """(data path, groups CSV or None) of the run."""
    if args.data:
        return args.data, args.groups
    sys.path.insert(0, str(ROOT))
    from tests.lung_subset import LUNG, write_lung_subset

    if LUNG.is_dir() and not args.synthetic:
        data_csv, groups_csv = write_lung_subset(work / "lung", args.images // 3)
        return str(data_csv), str(groups_csv)
    return str(synthetic_jpegs(work / "jpegs", args.images, args.source_size)), None


def child(args: argparse.Namespace) -> None:
    """One mode, in this process: prepare the data as ``unisal features`` does, build the cache."""
    sys.path.insert(0, str(BENCHMARKS))
    from peak_memory import peak_above

    from unisal.config import build_config
    from unisal.data.prepare import prepare_data
    from unisal.models.feature_cache import build_feature_cache
    from unisal.models.features import ViewSpec
    from unisal.threads import configure_threads

    values = {"data": {"path": args.data, "groups": args.groups, "image_size": args.image_size,
                       "cache_dir": args.cache, **MODES[args.mode]},
              "features": {"views": args.views, "batch_size": args.batch_size}, "device": args.device}  # fmt: skip
    cfg = build_config("cpu", values)
    configure_threads(cfg.threads)
    import torch

    device = torch.device(args.device)

    def build() -> object:
        data = prepare_data(cfg.data, cfg.seed, pixels_needed=False)
        return build_feature_cache(
            data.store, cfg.model, spec=ViewSpec.from_config(cfg.features), device=device,
            cache_dir=cfg.data.cache_dir, batch_size=cfg.features.batch_size, engine=cfg.features.engine,
        )  # fmt: skip

    store, seconds, peak_mb = peak_above(build)
    n, v, _ = store.info["shape"]  # type: ignore[attr-defined]
    on_disk = sum(p.stat().st_size for p in Path(args.cache).rglob("*") if p.is_file())
    print(json.dumps({
        "mode": args.mode, "images": n, "views": v, "seconds": round(seconds, 2),
        "images_per_second": round(n / seconds, 1), "views_per_second": round(n * v / seconds, 1),
        "extraction_images_per_second": store.info["images_per_second"],  # type: ignore[attr-defined]
        "peak_mb": round(peak_mb, 1), "cache_mb": round(on_disk / 2**20, 1),
        "engine": store.info["engine"], "device": args.device, "batch_size": args.batch_size,  # type: ignore[attr-defined]
        "features": str(store.folder / "features.npy"),  # type: ignore[attr-defined]
    }))  # fmt: skip


def difference(a: Path, b: Path) -> dict[str, float]:
    """How far features ``b`` are from ``a``: the largest difference in float16 steps (0: identical;
    meaningful for the same pixels) and the mean absolute difference relative to the mean absolute
    value (for other pixels: the device decoder's)."""
    x, y = np.load(a).astype(np.float32), np.load(b).astype(np.float32)
    ulp = np.spacing(np.abs(x).astype(np.float16)).astype(np.float32)
    return {
        "float16_steps_from_keep": round(float(np.max(np.abs(x - y) / ulp)), 2),
        "relative_difference_from_keep": round(float(np.abs(x - y).mean() / np.abs(x).mean()), 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data")
    parser.add_argument("--groups")
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument(
        "--synthetic", action="store_true", help="synthetic JPEGs even where the lung data are"
    )
    parser.add_argument("--source-size", type=int, default=224, help="side of the synthetic JPEGs")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--views", default="d8")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--modes", default="keep,stream,device")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        child(args)
        return
    sys.path.insert(0, str(BENCHMARKS))
    from peak_memory import CHILD_ENV

    with tempfile.TemporaryDirectory(prefix="unisal-extraction-") as tmp:
        work = Path(tmp)
        data, groups = data_source(args, work)
        reference: Path | None = None
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()  # fmt: skip
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            command = [sys.executable, __file__, "--mode", mode, "--data", data, "--cache", str(work / mode),
                       "--image-size", str(args.image_size), "--batch-size", str(args.batch_size),
                       "--views", args.views, "--device", args.device]  # fmt: skip
            if groups:
                command += ["--groups", groups]
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **CHILD_ENV})
            if done.returncode:
                print(json.dumps({"mode": mode, "error": done.stderr.strip().splitlines()[-1:]}))
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            features = Path(result.pop("features"))
            if mode == "keep":
                reference = features
            elif reference is not None:
                result |= difference(reference, features)
            print(json.dumps({**result, "commit": commit}), flush=True)


if __name__ == "__main__":
    main()
