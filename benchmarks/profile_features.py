"""Where the feature extraction's time goes, stage by stage, for each engine (in one process).

    .venv/bin/python benchmarks/profile_features.py [--images 256] [--batch-size 64]

On LC25000-lung tiles (the first ``--images`` of lung_aca): decode and resize to 112 px (PIL,
as the image cache does), the 8 d8 views and their normalisation, the backbone
(EfficientNet-Lite0) per engine, and the float16 conversion. Prints one JSON object with the
seconds of each stage and the images/s of the whole; the page faults of the process (the kernel
time that glibc's returned memory costs) are reported for the PyTorch engine with and without
freed memory kept (run it twice: with UNISAL_KEEP_FREED_MEMORY=0 and without).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from unisal.data.views import normalise, to_float
from unisal.models.backbones import create_backbone, normalisation
from unisal.models.features import ViewSpec, crop_matrices, image_views
from unisal.models.inference import openvino_forward, torch_forward
from unisal.threads import keep_freed_memory

LUNG = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lc25000-lung" / "lung_aca"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    kept = keep_freed_memory()
    files = sorted(LUNG.glob("*.jpeg"))[: args.images]
    if not files:
        sys.exit(f"no images in {LUNG}")
    t = time.perf_counter()
    images = np.stack(
        [np.asarray(Image.open(f).convert("RGB").resize((112, 112), Image.BILINEAR)) for f in files]
    )
    stages: dict[str, float] = {"decode_resize": time.perf_counter() - t}
    backbone = create_backbone("tf_efficientnet_lite0", True, None).eval()
    mean, std = normalisation(backbone)
    spec = ViewSpec()
    crops = crop_matrices(len(images), spec)
    t = time.perf_counter()
    with torch.inference_mode():
        views = [
            [normalise(v, mean, std) for v in image_views(to_float(torch.from_numpy(images[b : b + args.batch_size])), spec, crops[b : b + args.batch_size])]
            for b in range(0, len(images), args.batch_size)
        ]  # fmt: skip
    stages["views_normalise"] = time.perf_counter() - t
    result: dict[str, object] = {
        "images": len(images),
        "threads": torch.get_num_threads(),
        "freed_memory_kept": kept,
    }
    for name, make in (
        ("torch", lambda: torch_forward(backbone, torch.device("cpu"))),
        ("openvino", lambda: openvino_forward(backbone, 112, torch.get_num_threads())),
    ):
        t = time.perf_counter()
        forward = make()
        setup = time.perf_counter() - t
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = time.perf_counter()
        outs = [torch.stack([forward(v) for v in batch], 1) for batch in views]
        network = time.perf_counter() - t
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        t = time.perf_counter()
        _ = [o.to(torch.float16).numpy() for o in outs]
        half = time.perf_counter() - t
        total = stages["decode_resize"] + stages["views_normalise"] + network + half
        result[name] = {
            "setup_seconds": round(setup, 2),
            "network_seconds": round(network, 2),
            "float16_seconds": round(half, 3),
            "minor_page_faults_in_network": int(faults),
            "images_per_second_without_setup": round(len(images) / total, 1),
        }
    result["stages_seconds"] = {k: round(v, 3) for k, v in stages.items()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
