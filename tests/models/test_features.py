"""The multi-view feature cache: views, values, reuse, invalidation, half-written caches, kill and resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import sigkill_when, synthetic_tile
from unisal.config import ModelConfig
from unisal.data.cache import ImageStore, build_cache, cache_key
from unisal.data.views import normalise, to_float
from unisal.errors import RunError
from unisal.events import collect, subscribed
from unisal.models import feature_cache as features_module
from unisal.models.backbones import create_backbone, normalisation
from unisal.models.feature_cache import build_feature_cache, feature_cache_key
from unisal.models.features import (
    FeatureStore,
    ViewSpec,
    crop_matrices,
    fixed_view,
    image_views,
)

LITE0 = ModelConfig(backbone="tf_efficientnet_lite0", pretrained=True)
CPU = torch.device("cpu")
D8 = ViewSpec("d8")


def colour_store(n: int = 10, size: int = 32, seed: int = 0) -> ImageStore:
    rng = np.random.default_rng(seed)
    images = np.stack([synthetic_tile(i % 3, size, rng) for i in range(n)])
    return ImageStore(images, np.arange(n))


def build(store: ImageStore, tmp_path: Path, spec: ViewSpec = D8, **kwargs: object) -> FeatureStore:
    return build_feature_cache(
        store,
        kwargs.pop("model", LITE0),
        spec=spec,
        device=CPU,
        cache_dir=tmp_path,
        **kwargs,
    )


def test_fixed_views_are_the_eight_symmetries_of_the_square() -> None:
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    views = [fixed_view(x, k) for k in range(8)]
    assert torch.equal(views[0], x)
    assert torch.equal(views[1], torch.rot90(x, 1, dims=(2, 3)))
    assert torch.equal(views[4], x.flip(3))
    flat = {tuple(v[0, 0].flatten().tolist()) for v in views}
    assert len(flat) == 8  # all distinct on an asymmetric image
    assert all(v.shape == x.shape for v in views)


def test_view_spec_counts_and_orders_views() -> None:
    assert ViewSpec("identity").n_views == 1
    assert ViewSpec("rot4").n_views == 4
    spec = ViewSpec("d8", crops=3)
    assert spec.n_views == 11
    x = torch.rand(2, 3, 8, 8)
    views = list(image_views(x, spec, crop_matrices(2, spec)))
    assert len(views) == 11 and torch.equal(views[0], x)


def test_crops_depend_on_the_image_row_only() -> None:
    spec = ViewSpec("identity", crops=2)
    all_at_once = crop_matrices(10, spec)
    assert torch.equal(crop_matrices(10, spec), all_at_once)  # fixed seed
    assert not torch.equal(all_at_once[0, 0], all_at_once[0, 1])
    assert torch.equal(crop_matrices(4, spec), all_at_once[:4])


def test_cached_features_are_the_backbone_on_each_view(tmp_path: Path) -> None:
    store = colour_store()
    cache = build(store, tmp_path, batch_size=4)
    assert cache.array.shape == (10, 8, 1280) and cache.array.dtype == np.float16
    backbone = create_backbone("tf_efficientnet_lite0", pretrained=True).eval()
    mean, std = normalisation(backbone)
    x = to_float(torch.from_numpy(store.array[:3].copy()))
    with torch.no_grad():
        for k in (0, 5):
            expected = backbone(normalise(fixed_view(x, k), mean, std)).numpy()
            np.testing.assert_allclose(cache.get(np.arange(3), np.full(3, k)), expected, rtol=1e-2, atol=1e-2)
    assert cache.get_all(np.array([2, 0])).shape == (2, 8, 1280)
    np.testing.assert_array_equal(
        cache.get_all(np.array([2]))[0, 3], cache.get(np.array([2]), np.array([3]))[0]
    )
    assert cache.info["images_per_second"] > 0 and cache.info["views"] == "d8"


def test_openvino_gives_the_features_of_pytorch_within_float16_rounding(tmp_path: Path) -> None:
    """The engines may compute in another order (float32 differences ~1e-6 relative); what the
    cache stores is float16, so a value may round to a neighbour: at most one float16 step
    (2^-10 of the value), plus a little where values are near zero."""
    store = colour_store(n=12, size=48)
    ours = build(store, tmp_path / "torch", engine="torch", batch_size=5)
    theirs = build(store, tmp_path / "openvino", engine="openvino", batch_size=5)
    assert (ours.info["engine"], theirs.info["engine"]) == ("torch", "openvino")
    a, b = np.asarray(theirs.array, np.float32), np.asarray(ours.array, np.float32)
    np.testing.assert_allclose(a, b, rtol=2**-10, atol=1e-3)
    assert np.mean(a == b) > 0.9  # most values round to the same float16


def test_auto_engine_keeps_pytorch_for_a_few_views_and_on_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    from unisal.models import inference

    backbone = create_backbone("test_resnet", pretrained=False).eval()
    said: list[str] = []
    with subscribed(collect(said)):
        few = inference.backbone_forward(backbone, engine="auto", device=CPU, image_size=32, n_views=80)
    assert few[1] == "torch" and not said  # converting would cost more than it saves

    def cannot(*args: object) -> None:
        raise RuntimeError("unsupported operation Foo")

    monkeypatch.setattr(inference, "openvino_forward", cannot)
    with subscribed(collect(said)):
        forward, used = inference.backbone_forward(
            backbone, engine="auto", device=CPU, image_size=32, n_views=10**6
        )
    assert used == "torch" and "OpenVINO cannot run this backbone (unsupported operation Foo)" in said[0]
    assert forward(torch.zeros(2, 3, 32, 32)).shape[0] == 2
    with pytest.raises(RunError, match="OpenVINO cannot run this backbone"):
        inference.backbone_forward(backbone, engine="openvino", device=CPU, image_size=32, n_views=8)


def test_catalogue_rows_map_to_cache_rows(tmp_path: Path) -> None:
    store = colour_store()
    cache = build(store, tmp_path, spec=ViewSpec("identity"))
    shuffled = FeatureStore(cache.array, np.array([9, 3, 0]), cache.info)
    np.testing.assert_array_equal(
        shuffled.get(np.array([1]), np.array([0])), cache.get(np.array([3]), np.array([0]))
    )


def test_view_means_are_kept_beside_the_cache_and_equal_the_mean_in_memory(tmp_path: Path) -> None:
    """What ``mean`` predictions read: memory-mapped from mean.npy, written once, the same numbers as
    averaging in memory; rewritten when the features under it changed."""
    from unisal.models.view_means import view_means
    from unisal.train.inputs import FeatureInputs

    cache = build(colour_store(), tmp_path)
    assert cache.folder is not None
    means = view_means(cache)
    assert isinstance(means, np.memmap) and means.shape == (10, cache.dim) and means.dtype == np.float32
    in_memory = view_means(FeatureStore(cache.array, cache.rows, cache.info))  # no folder
    assert not isinstance(in_memory, np.memmap)
    np.testing.assert_array_equal(means, in_memory)
    np.testing.assert_array_equal(means[4], np.asarray(cache.array[4], np.float32).mean(0))
    stamp = (cache.folder / "mean.npy").stat().st_mtime_ns
    assert view_means(cache).shape == means.shape and (cache.folder / "mean.npy").stat().st_mtime_ns == stamp
    changed = FeatureStore(cache.array, cache.rows, {**cache.info, "sample_sha1": "other"}, cache.folder)
    view_means(changed)
    assert (cache.folder / "mean.npy").stat().st_mtime_ns != stamp  # another cache's means: written again
    (cache.folder / "mean.npy").write_bytes(b"truncated")  # damaged under a whole record: rebuilt
    np.testing.assert_array_equal(view_means(cache), in_memory)
    shuffled = FeatureInputs(FeatureStore(cache.array, np.array([9, 3, 0]), cache.info, cache.folder))
    np.testing.assert_array_equal(shuffled.mean_features(np.array([1, 0])), in_memory[[3, 9]])


def test_a_complete_cache_is_reused_without_the_backbone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = colour_store()
    first = build(store, tmp_path, spec=ViewSpec("rot4"))

    def no_backbone(*args: object, **kwargs: object) -> None:
        raise AssertionError("a complete cache must not run the backbone again")

    monkeypatch.setattr("unisal.models.backbones.create_backbone", no_backbone)
    again = build(store, tmp_path, spec=ViewSpec("rot4"))
    np.testing.assert_array_equal(np.asarray(again.array), np.asarray(first.array))


def test_key_changes_with_backbone_weights_views_and_images(tmp_path: Path) -> None:
    key = feature_cache_key("images-a", LITE0, ViewSpec("d8"))
    assert feature_cache_key("images-a", LITE0, ViewSpec("d8")) == key
    assert feature_cache_key("images-b", LITE0, ViewSpec("d8")) != key
    assert feature_cache_key("images-a", LITE0, ViewSpec("rot4")) != key
    assert feature_cache_key("images-a", LITE0, ViewSpec("d8", crops=2)) != key
    assert feature_cache_key("images-a", ModelConfig(backbone="resnet18"), ViewSpec("d8")) != key
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"one")
    with_file = ModelConfig(backbone="tf_efficientnet_lite0", weights=str(weights))
    file_key = feature_cache_key("images-a", with_file, ViewSpec("d8"))
    assert file_key != key
    weights.write_bytes(b"other weights")  # rewritten checkpoint: new key
    assert feature_cache_key("images-a", with_file, ViewSpec("d8")) != file_key


def test_a_changed_file_or_image_size_builds_a_new_cache(tmp_path: Path, make_image_folder) -> None:
    root = make_image_folder(classes={"A": 3, "B": 3}, size=24)
    paths = sorted(str(p) for p in root.rglob("*.png"))

    def features_of(size: int) -> FeatureStore:
        key = cache_key(paths, size)
        array, _ = build_cache(paths, size, cache_dir=tmp_path / "images", key=key)
        store = ImageStore(array, np.arange(len(paths)), fingerprint=key)
        return build(store, tmp_path / "features", spec=ViewSpec("identity"))

    first = features_of(32)
    assert features_of(48).info["key"] != first.info["key"]
    image = Path(paths[0])
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 5_000_000_000))
    changed = features_of(32)
    assert changed.info["key"] != first.info["key"]
    assert len(list((tmp_path / "features" / "features").iterdir())) == 3


class Killed(BaseException):
    """Stands in for SIGKILL inside the process: nothing after it runs."""


def test_killed_extraction_resumes_to_the_same_features(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = colour_store(n=10)
    reference = np.asarray(build(store, tmp_path / "whole", batch_size=3).array)

    real_extract = features_module._extract
    calls = {"n": 0}

    def extract_then_die(*args: object, **kwargs: object) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 3:
            raise Killed
        return real_extract(*args, **kwargs)  # type: ignore[arg-type]

    with monkeypatch.context() as patch:
        patch.setattr(features_module, "_extract", extract_then_die)
        with pytest.raises(Killed):
            build(store, tmp_path / "killed", batch_size=3, shard_images=3)  # shards of one batch
    (folder,) = (tmp_path / "killed" / "features").iterdir()
    assert not (folder / "complete.json").exists()  # a half-written cache is never complete
    records = sorted(p.name for p in (folder / "shards").glob("*.json"))
    assert records == ["000000000-000000003.json", "000000003-000000006.json"]  # two whole shards

    calls["n"] = 0
    with monkeypatch.context() as patch:
        patch.setattr(features_module, "_extract", extract_then_die)
        calls["n"] = -100  # no more deaths
        resumed = build(store, tmp_path / "killed", batch_size=3, shard_images=3)
    assert calls["n"] == -100 + 2  # only the last two shards (images 6-8 and 9) were extracted again
    np.testing.assert_array_equal(np.asarray(resumed.array), reference)
    assert not (folder / "shards").exists() and resumed.info["resumed_shards"] == 2


@pytest.mark.parametrize("damage", ["no marker", "foreign marker", "truncated array", "zeroed array"])
def test_a_half_written_or_stale_cache_is_rebuilt(tmp_path: Path, damage: str) -> None:
    store = colour_store()
    expected = np.asarray(build(store, tmp_path, spec=ViewSpec("identity")).array).copy()
    (folder,) = (tmp_path / "features").iterdir()
    marker = json.loads((folder / "complete.json").read_text())
    if damage == "no marker":
        (folder / "complete.json").unlink()
    elif damage == "foreign marker":
        (folder / "complete.json").write_text(json.dumps(marker | {"key": "another-cache"}))
    elif damage == "truncated array":
        np.save(folder / "features.npy", expected[:4])
    else:  # the same size, every value zero: only the checksum of sampled rows notices
        np.save(folder / "features.npy", np.zeros_like(expected))
    rebuilt = build(store, tmp_path, spec=ViewSpec("identity"))
    assert json.loads((folder / "complete.json").read_text())["key"] == marker["key"]
    np.testing.assert_array_equal(np.asarray(rebuilt.array), expected)


@pytest.mark.slow
def test_sigkilled_features_command_resumes(tmp_path: Path, make_image_folder) -> None:
    """A real SIGKILL of `unisal features` mid-extraction, then the same command finishes the cache."""
    root = make_image_folder(classes={"A": 12, "B": 12}, size=64)
    args = [
        sys.executable, "-m", "unisal", "features", "--quiet", "--data", str(root), "--image-size", "64",
        "--cache-dir", str(tmp_path / "cache"), "--views", "d8",
    ]  # fmt: skip
    config = tmp_path / "small-batches.yaml"
    config.write_text("features:\n  batch_size: 2\n  shard_images: 2\n")
    args += ["--config", str(config)]

    def shards_done() -> list[Path]:
        return list((tmp_path / "cache").glob("features/*/shards/*.json"))

    sigkill_when(args, lambda: len(shards_done()) >= 2)
    (folder,) = (tmp_path / "cache" / "features").iterdir()
    assert not (folder / "complete.json").exists()
    assert 2 <= len(shards_done()) < 12
    resumed = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "24 images x 8 views" in resumed.stdout
    assert (folder / "complete.json").exists()


def test_a_full_disk_or_an_extractor_that_writes_nothing_is_a_clear_cache_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collections import namedtuple

    from unisal.errors import CacheError
    from unisal.models import feature_shards

    store = colour_store(n=4)
    usage = namedtuple("usage", "total used free")
    with monkeypatch.context() as patch:
        patch.setattr(feature_shards.shutil, "disk_usage", lambda _: usage(10**6, 10**6, 1000))
        with pytest.raises(CacheError, match="GB free"):
            build(store, tmp_path / "full")

    def lazy(work: object, backbone: object) -> tuple[str, int]:
        return "none", 0  # as workers writing to a folder this process does not see

    with pytest.raises(CacheError, match=r"1 shard\(s\) of the feature cache .* are missing"):
        build(store, tmp_path / "lazy", extractor=lazy)
