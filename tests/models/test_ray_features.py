"""``--executor ray`` for the feature cache on a local Ray instance of two CPUs: shards written by
two workers assemble into the cache the single process builds (to float16 rounding), and a
cache whose shards were partly written before resumes from them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import synthetic_tile
from tests.models.test_features import LITE0
from unisal.data.cache import ImageStore
from unisal.models import feature_shards
from unisal.models.feature_cache import build_feature_cache
from unisal.models.features import ViewSpec
from unisal.models.ray_features import OnRay

pytest.importorskip("ray", reason="ray is not installed (pip install 'unisal[ray]')")


def memmap_store(tmp_path: Path, n: int = 14, size: int = 32) -> ImageStore:
    """Decoded images in a memory-mapped file, as the decoded-image cache holds them."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "images.npy", np.stack([synthetic_tile(i % 3, size, rng) for i in range(n)]))
    return ImageStore(np.load(tmp_path / "images.npy", mmap_mode="r"), np.arange(n), "synthetic-14")


def build(store: ImageStore, cache: Path, **kwargs: object):
    return build_feature_cache(
        store, LITE0, spec=ViewSpec("d8"), device=torch.device("cpu"), cache_dir=cache, batch_size=2,
        shard_images=4, engine="torch", **kwargs,
    )  # fmt: skip


def test_two_ray_workers_build_the_cache_of_one_process_and_resume_its_shards(
    tmp_path: Path, local_ray: None
) -> None:
    store = memmap_store(tmp_path)
    built = build(store, tmp_path / "local")
    local = np.asarray(built.array, np.float32)
    on_ray = build(store, tmp_path / "ray", extractor=OnRay())
    assert on_ray.info["executor"] == "ray" and on_ray.info["shards"] == 4  # 4 + 4 + 4 + 2 images
    assert on_ray.array.shape == local.shape and local.shape[:2] == (14, 8)
    # float16 rounding apart (the workers run one thread each, the single process two)
    np.testing.assert_allclose(np.asarray(on_ray.array, np.float32), local, rtol=2e-3, atol=2e-3)
    assert built.folder is not None and on_ray.folder is not None
    assert not (on_ray.folder / "shards").exists()
    # a build killed after two shards: no marker, no array, two whole shards in the folder
    folder = tmp_path / "partial" / "features" / built.folder.name
    for lo, hi in [(0, 4), (4, 8)]:
        feature_shards.write_shard(folder, lo, hi, np.asarray(built.array[lo:hi]), 0.1)
    resumed = build(store, tmp_path / "partial", extractor=OnRay())
    assert resumed.info["resumed_shards"] == 2
    np.testing.assert_allclose(np.asarray(resumed.array, np.float32), local, rtol=2e-3, atol=2e-3)
    assert json.loads((folder / "complete.json").read_text())["shards"] == 4


def test_ray_workers_decode_streamed_items_themselves(tmp_path: Path, local_ray: None) -> None:
    from PIL import Image

    from unisal.data.items import FileItems
    from unisal.data.stream import StreamedImages

    rng = np.random.default_rng(1)
    paths = []
    for i in range(10):
        paths.append(str(tmp_path / f"tile_{i}.png"))
        Image.fromarray(synthetic_tile(i % 3, 40, rng)).save(paths[-1])
    Path(paths[7]).write_bytes(b"broken")
    streamed = ImageStore(StreamedImages(FileItems(tuple(paths)), 32), np.arange(10), "streamed-10")  # type: ignore[arg-type]
    local = build(streamed, tmp_path / "local")
    on_ray = build(streamed, tmp_path / "ray", extractor=OnRay())
    assert on_ray.info["executor"] == "ray" and on_ray.info["streamed"]
    np.testing.assert_allclose(np.asarray(on_ray.array, np.float32), np.asarray(local.array, np.float32),
                               rtol=2e-3, atol=2e-3)  # fmt: skip
    assert list(on_ray.unreadable) == list(local.unreadable) == [7]  # found by the worker that read it
