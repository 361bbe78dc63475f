"""The feature cache built from streamed pixels (issue 18): the same features under the same key as
from the decoded-image cache, unreadable items recorded by the shards and the cache and handled
by the frozen learner, a run that streams equal to one that keeps the cache, and the fine-tune
learner refusing to stream."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests.models.test_features import LITE0
from tests.test_loop_synthetic import config
from unisal.cli.main import cli
from unisal.config import ConfigError
from unisal.data.cache import ImageStore
from unisal.data.catalogue import DataError
from unisal.data.prepare import prepare_data
from unisal.events import collect, subscribed
from unisal.io import folder_marker
from unisal.learners import create_learner
from unisal.loop import ActiveLearningRun
from unisal.models.feature_cache import build_feature_cache
from unisal.models.features import FeatureStore, ViewSpec

CPU = torch.device("cpu")


def build(store: ImageStore, cache: Path, **kwargs: object) -> FeatureStore:
    return build_feature_cache(
        store, LITE0, spec=ViewSpec("rot4"), device=CPU, cache_dir=cache, batch_size=3, shard_images=4,
        engine="torch", **kwargs,
    )  # fmt: skip


def stores(root: Path, cache: Path, **data: object) -> tuple[ImageStore, ImageStore]:
    """The same images decoded into the cache and streamed."""
    kept = prepare_data(config(root, cache, "x", "frozen", data__pixel_cache="keep").data, 0)
    streamed = prepare_data(config(root, cache, "x", "frozen", data__pixel_cache="stream").data, 0)
    return kept.store, streamed.store


def test_streamed_features_equal_the_cached_ones_under_the_same_key(
    make_image_folder, tmp_path: Path
) -> None:
    root = make_image_folder(classes={"red": 5, "green": 5}, size=40)
    kept, streamed = stores(root, tmp_path)
    assert streamed.streamed and streamed.fingerprint == kept.fingerprint
    from_stream = build(streamed, tmp_path / "a")
    from_cache = build(kept, tmp_path / "b")
    assert from_stream.info["streamed"] and not from_cache.info["streamed"]
    assert from_stream.folder is not None and from_cache.folder is not None
    assert from_stream.folder.name == from_cache.folder.name  # one key: either serves the other
    np.testing.assert_array_equal(np.asarray(from_stream.array), np.asarray(from_cache.array))
    assert from_stream.unreadable == {} and from_stream.info["shards"] == 3
    reused = build(kept, tmp_path / "a")
    assert reused.info["reused"] and reused.folder == from_stream.folder


def test_unreadable_items_are_recorded_by_the_shards_and_the_cache(make_image_folder, tmp_path: Path) -> None:
    root = make_image_folder(classes={"red": 5, "green": 5}, size=40)
    broken = sorted(root.rglob("*.png"))[6]
    broken.write_bytes(b"\x89PNG truncated")
    streamed = prepare_data(config(root, tmp_path, "x", "frozen", data__pixel_cache="stream").data, 0).store
    row = streamed.array.items.ids.index(str(broken))  # type: ignore[attr-defined]
    built = build(streamed, tmp_path)
    assert list(built.unreadable) == [row] and built.unreadable[row]  # the decoder's reason
    assert built.folder is not None
    marker = json.loads(folder_marker(built.folder).read_text())
    assert marker["unreadable"] == [[row, built.unreadable[row]]]
    # the features of a black image stand in its row, as in the decoded-image cache
    black = build(ImageStore(np.zeros((1, 32, 32, 3), np.uint8), np.arange(1)), tmp_path / "black")
    np.testing.assert_array_equal(np.asarray(built.array[row]), np.asarray(black.array[0]))


def test_a_cache_from_before_the_records_is_extracted_again_for_a_stream(
    make_image_folder, tmp_path: Path
) -> None:
    root = make_image_folder(classes={"red": 3, "green": 3}, size=32)
    kept, streamed = stores(root, tmp_path)
    first = build(kept, tmp_path)
    assert first.folder is not None
    marker = json.loads(folder_marker(first.folder).read_text())
    del marker["unreadable"]
    folder_marker(first.folder).write_text(json.dumps(marker))
    assert build(kept, tmp_path).info["reused"]  # the decoded-image cache knows its bad files itself
    with subscribed(collect(events := [])):  # type: ignore[var-annotated]
        again = build(streamed, tmp_path)
    assert "reused" not in again.info and "unreadable" in again.info
    assert any("built before caches recorded their unreadable images" in str(e) for e in events)


def test_a_streamed_run_equals_a_run_on_the_cache(make_image_folder, tmp_path: Path) -> None:
    root = make_image_folder(classes={"red": 12, "green": 12, "blue": 12}, size=32)
    ActiveLearningRun(config(root, tmp_path, "kept", "frozen", data__pixel_cache="keep")).run()
    cache = tmp_path / "cache"
    for stale in cache.glob("*.npy"):  # no decoded images left to fall back on
        stale.unlink()
    for features in (cache / "features").iterdir():  # and the features extracted again
        for path in features.iterdir():
            path.unlink()
    ActiveLearningRun(config(root, tmp_path, "streamed", "frozen", data__pixel_cache="stream")).run()
    assert not list(cache.glob("*.npy"))  # never decoded into the cache
    assert _results(tmp_path / "streamed") == _results(tmp_path / "kept")
    for k in (1, 2):
        kept = (tmp_path / "kept" / "queries" / f"round_{k}.csv").read_text()
        assert (tmp_path / "streamed" / "queries" / f"round_{k}.csv").read_text() == kept


def _results(out: Path) -> list[dict[str, str]]:
    with (out / "rounds.csv").open(newline="") as handle:
        return [{k: v for k, v in r.items() if "seconds" not in k} for r in csv.DictReader(handle)]


def test_the_frozen_learner_refuses_or_leaves_out_streamed_unreadable_items(
    make_image_folder, tmp_path: Path
) -> None:
    root = make_image_folder(classes={"red": 6, "green": 6}, size=32)
    sorted(root.rglob("*.png"))[2].write_bytes(b"")
    cfg = config(root, tmp_path, "x", "frozen", data__pixel_cache="stream")
    data = prepare_data(cfg.data, 0, pixels_needed=False)
    assert data.bad == []  # not known before the pixels are read
    learner = create_learner(cfg, 2, CPU)
    with pytest.raises(DataError, match="(?s)found while their pixels were streamed.*--skip-bad-images"):
        learner.prepare(data)
    cfg.data.skip_bad_images = True
    skipping = create_learner(cfg, 2, CPU)
    skipping.prepare(data)
    assert skipping.features is not None and skipping.features.info["reused"]  # not extracted again
    assert len(data.bad) == 1 and "green_2" in data.bad[0].path
    assert int((data.split == "unreadable").sum()) == 1


def test_streaming_is_refused_where_the_learner_reads_pixels_every_epoch(
    make_image_folder, tmp_path: Path
) -> None:
    root = make_image_folder(classes={"red": 4, "green": 4}, size=32)
    with pytest.raises(ConfigError, match="finetune learner reads the images at every epoch"):
        ActiveLearningRun(config(root, tmp_path, "out", "finetune", data__pixel_cache="stream"))
    with pytest.raises(ConfigError, match="drop --decoder device"):
        ActiveLearningRun(config(root, tmp_path, "out", "finetune", data__decoder="device"))
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(
        cli, ["simulate", "--data", str(root), "--learner", "finetune", "--pixel-cache", "stream",
              "--out", str(tmp_path / "cli"), "--cache-dir", str(tmp_path / "cache")],
    )  # fmt: skip
    assert result.exit_code == 1 and "needs the decoded-image cache" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "cli").exists()


def test_unisal_features_streams_without_an_image_cache(make_image_folder, tmp_path: Path) -> None:
    root = make_image_folder(classes={"red": 3, "green": 3}, size=32)
    cache = tmp_path / "cache"
    args = ["features", "--data", str(root), "--image-size", "32", "--views", "identity", "--cache-dir",
            str(cache), "--quiet", "--feature-engine", "torch"]  # fmt: skip
    result = CliRunner().invoke(cli, [*args, "--pixel-cache", "stream"])
    assert result.exit_code == 0, result.output
    assert "feature cache: 6 images x 1 views" in result.output and not list(cache.glob("*.npy"))
    again = CliRunner().invoke(cli, args)  # the decoded-image cache's key is the same: reused
    assert again.exit_code == 0 and "reused, built earlier" in again.output
    device = CliRunner().invoke(cli, [*args, "--decoder", "device"])  # PNG files: Pillow's pixels, own key
    assert device.exit_code == 0 and "built in" in device.output


def test_a_streamed_run_with_an_unreadable_file_skips_it_resumes_and_gives_a_reference(
    make_image_folder, tmp_path: Path
) -> None:
    from unisal.reference import train_supervised_reference

    root = make_image_folder(classes={"red": 10, "green": 10, "blue": 10}, size=32)
    broken = sorted(root.rglob("*.png"))[4]
    broken.write_bytes(b"GIF89a")
    values = {"data__pixel_cache": "stream", "data__skip_bad_images": True, "rounds": 1}
    ActiveLearningRun(config(root, tmp_path, "run", "frozen", **values)).run()
    out = tmp_path / "run"
    with (out / "splits.csv").open(newline="") as handle:
        splits = {r["path"]: r["split"] for r in csv.DictReader(handle)}
    assert splits[str(broken.relative_to(root))] == "unreadable"
    assert str(broken) in (out / "bad_images.csv").read_text()
    queried = "".join((out / "queries" / "round_1.csv").read_text().splitlines()[1:])
    assert broken.name not in queried
    ActiveLearningRun(config(root, tmp_path, "run", "frozen", **{**values, "rounds": 2}), resume=True).run()
    assert len(_results(out)) == 3  # rounds 0-2: the split checked on resume, as recorded
    summary = train_supervised_reference(out, "run", None, tmp_path / "reference", {})
    assert summary["n_labeled"] > 0


def test_shards_of_a_killed_cached_build_keep_its_unreadable_rows_for_a_streamed_resume(
    make_image_folder, tmp_path: Path
) -> None:
    import dataclasses

    from unisal.errors import CacheError
    from unisal.models import feature_cache

    root = make_image_folder(classes={"red": 5, "green": 5}, size=32)
    broken = sorted(root.rglob("*.png"))[1]
    broken.write_bytes(b"")
    keep = config(root, tmp_path, "x", "frozen", data__pixel_cache="keep", data__skip_bad_images=True)
    kept = prepare_data(keep.data, 0).store
    assert list(kept.unreadable) == [1] and "<this file>" in kept.unreadable[1]  # no path: caches are shared

    def first_shard_only(work: feature_cache.ShardWork, backbone: torch.nn.Module) -> tuple[str, int]:
        return feature_cache.extract_here(dataclasses.replace(work, shards=work.shards[:1]), backbone)

    with pytest.raises(CacheError, match="missing after extraction"):  # a build killed after one shard
        build(kept, tmp_path, extractor=first_shard_only)
    streamed = prepare_data(config(root, tmp_path, "x", "frozen", data__pixel_cache="stream").data, 0).store
    resumed = build(streamed, tmp_path)
    assert resumed.info["resumed_shards"] == 1 and list(resumed.unreadable) == [1]
    data = prepare_data(config(root, tmp_path, "x", "frozen", data__pixel_cache="stream").data, 0)
    with pytest.raises(DataError, match=f"{broken}: cannot identify image file '{broken}'"):
        data.leave_out_unreadable(resumed.unreadable, skip=False)  # the path put back


def test_a_shard_from_before_the_records_is_extracted_again_for_a_stream(
    make_image_folder, tmp_path: Path
) -> None:
    from unisal.models import feature_shards

    root = make_image_folder(classes={"red": 4, "green": 4}, size=32)
    kept, streamed = stores(root, tmp_path)
    whole = build(kept, tmp_path / "whole")
    assert whole.folder is not None
    folder = tmp_path / "old" / "features" / whole.folder.name
    feature_shards.write_shard(folder, 0, 4, np.asarray(whole.array[0:4]), 0.1)
    record = folder / "shards" / "000000000-000000004.json"
    old = json.loads(record.read_text())
    del old["unreadable"]
    record.write_text(json.dumps(old))
    assert build(streamed, tmp_path / "old").info["resumed_shards"] == 0
    again = tmp_path / "old2" / "features" / whole.folder.name
    feature_shards.write_shard(again, 0, 4, np.asarray(whole.array[0:4]), 0.1)
    (again / "shards" / record.name).write_text(json.dumps(old))
    assert build(kept, tmp_path / "old2").info["resumed_shards"] == 1  # the image cache knows its bad files


def test_the_device_decoder_with_a_kept_cache_is_refused(make_image_folder, tmp_path: Path) -> None:
    root = make_image_folder(classes={"red": 2, "green": 2}, size=32)
    with pytest.raises(ConfigError, match="--decoder device decodes pixels that are streamed"):
        config(root, tmp_path, "x", "frozen", data__pixel_cache="keep", data__decoder="device")


def test_unisal_features_names_the_files_it_could_not_stream(make_image_folder, tmp_path: Path) -> None:
    root = make_image_folder(classes={"red": 3, "green": 3}, size=32)
    sorted(root.rglob("*.png"))[0].write_bytes(b"junk")
    args = ["features", "--data", str(root), "--image-size", "32", "--views", "identity", "--cache-dir",
            str(tmp_path), "--quiet", "--feature-engine", "torch", "--pixel-cache", "stream"]  # fmt: skip
    refused = CliRunner().invoke(cli, args)
    assert (
        refused.exit_code == 1
        and "1 image(s) cannot be read (found while their pixels were streamed" in refused.output
    )
    assert "Traceback" not in refused.output
    skipped = CliRunner().invoke(cli, [*args, "--skip-bad-images"])
    assert skipped.exit_code == 0 and "reused, built earlier" in skipped.output
