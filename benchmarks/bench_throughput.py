"""Time the parts of an AL round on this machine: image decoding, co-training, inference.

    python benchmarks/bench_throughput.py --data ../shared/data/lc25000-lung --image-size 64

Prints one line per measurement; docs/benchmarks.md records the numbers.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from unisal.config import ModelConfig, TrainConfig
from unisal.data.cache import ImageStore, build_cache
from unisal.data.readers import load_catalogue
from unisal.models.network import build_network
from unisal.train.evaluate import predict
from unisal.train.fit import TrainingSets, fit
from unisal.train.inputs import ImageInputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}")

    catalogue = load_catalogue(args.data)
    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        array, _ = build_cache(catalogue.items, args.image_size, cache_dir)
        seconds = time.perf_counter() - start
        print(f"decode+resize to {args.image_size}px: {len(catalogue)} images in {seconds:.1f} s "
              f"({len(catalogue) / seconds:.0f} images/s)")  # fmt: skip
        store = ImageStore(array, np.arange(len(catalogue)))
        n_classes = len(catalogue.class_names)
        model = ModelConfig(backbone=args.backbone, pretrained=True)
        nets = [build_network(model, n_classes, seed) for seed in range(2)]
        images = ImageInputs(store, nets[0].mean, nets[0].std)
        rng = np.random.default_rng(0)
        idx = rng.permutation(len(catalogue))
        lb, ulb = idx[:60], idx[60:5060]
        cfg = TrainConfig(epochs=1, steps_per_epoch=args.steps, batch_size=args.batch_size)
        fit(nets, images, TrainingSets(lb, catalogue.labels[lb], ulb), cfg, device, seed=0)  # warm-up
        result = fit(nets, images, TrainingSets(lb, catalogue.labels[lb], ulb), cfg, device, seed=1)
        per_step = result.seconds / result.steps
        print(f"co-training (2 networks, batch {args.batch_size} = half labelled): {per_step * 1000:.0f} ms/step, "
              f"{args.batch_size / per_step:.0f} images/s per network")  # fmt: skip
        one = nets[:1]
        result = fit(one, images, TrainingSets(lb, catalogue.labels[lb]), cfg, device, seed=1)
        per_step = result.seconds / result.steps
        print(f"supervised (1 network, batch {args.batch_size}): {per_step * 1000:.0f} ms/step, "
              f"{args.batch_size / per_step:.0f} images/s")  # fmt: skip
        sample = idx[:2000]
        start = time.perf_counter()
        predict(nets, images, sample, device, 128)
        seconds = time.perf_counter() - start
        print(f"inference (2 networks): {len(sample) / seconds:.0f} images/s")


if __name__ == "__main__":
    main()
