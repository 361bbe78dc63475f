"""Pixels streamed from their items (issue 18): the same pixels as the decoded-image cache, none
of them kept, unreadable items reported, the device decoder within a few levels of Pillow's, and
the choice between the cache and the stream."""

from __future__ import annotations

import pickle
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import synthetic_tile
from unisal.config import DataConfig
from unisal.data import prepare as prepare_module
from unisal.data.cache import build_cache
from unisal.data.catalogue import DataError
from unisal.data.images import BadImageError
from unisal.data.items import FileItems
from unisal.data.prepare import UNREADABLE, prepare_data, streams_pixels
from unisal.data.stream import (
    StreamedImages,
    decode_jpegs,
    prefetched,
    read_rows_to,
    square_resize,
    stream_fingerprint,
)

CPU = torch.device("cpu")


def image_files(root: Path, n: int = 6, size: int = 40, fmt: str = "png") -> FileItems:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = root / f"tile_{i}.{fmt}"
        Image.fromarray(synthetic_tile(i % 3, size, rng)).save(path, quality=95)
        paths.append(str(path))
    return FileItems(tuple(paths))


def test_streamed_pixels_are_the_cache_pixels_and_none_are_kept(tmp_path: Path) -> None:
    items = image_files(tmp_path / "images", n=7, size=40)
    cached, bad = build_cache(items, 32, tmp_path / "cache")
    streamed = StreamedImages(items, 32, workers=2)
    assert bad == [] and streamed.shape == cached.shape == (7, 32, 32, 3) and len(streamed) == 7
    assert np.array_equal(streamed[0:7], cached)  # a slice
    assert np.array_equal(streamed[3], cached[3])  # one row
    assert np.array_equal(streamed[np.array([5, 1, 5])], cached[[5, 1, 5]])  # rows in any order
    assert np.array_equal(streamed[-1], cached[6]) and np.array_equal(streamed[5:], cached[5:])
    with pytest.raises(IndexError, match="outside the 7 items"):
        streamed[7]
    mask = np.zeros(7, bool)
    mask[[2, 4]] = True
    assert np.array_equal(streamed[mask], cached[[2, 4]])  # a mask is its True rows, not rows 0 and 1
    on_device, unread = read_rows_to(streamed, 2, 6, CPU)
    assert unread == [] and torch.equal(on_device, torch.from_numpy(np.array(cached[2:6])))
    # a Ray worker gets it pickled: the items, not threads or pixels
    copy = pickle.loads(pickle.dumps(streamed))
    assert copy._pool is None and np.array_equal(copy[1:3], cached[1:3])
    assert len(pickle.dumps(streamed)) < 2_000


def test_an_unreadable_item_is_a_zero_row_with_its_reason(tmp_path: Path) -> None:
    items = image_files(tmp_path, n=4)
    Path(items.ids[2]).write_bytes(b"not an image at all")
    streamed = StreamedImages(items, 16)
    images, bad = streamed.read(np.arange(4))
    assert [row for row, _ in bad] == [2] and items.ids[2] in str(bad[0][1])
    assert not images[2].any() and images[1].any()
    with pytest.raises(BadImageError, match="tile_2"):
        streamed[1:3]
    assert streamed[0:2].shape == (2, 16, 16, 3)  # the rows before it still read


def test_prefetched_keeps_the_order_reads_ahead_and_passes_errors_on() -> None:
    started: list[int] = []
    gate = threading.Event()

    def read(job: int) -> int:
        started.append(job)
        if job == 0:
            gate.wait(5)
        return job * 10

    stream = prefetched(read, range(6), depth=2)
    time.sleep(0.05)
    assert started == []  # nothing read before the first value is asked for
    gate.set()
    assert list(stream) == [0, 10, 20, 30, 40, 50]

    def fails(job: int) -> int:
        if job == 3:
            raise BadImageError("x.png", "truncated")
        return job

    with pytest.raises(BadImageError, match="truncated"):
        list(prefetched(fails, range(6)))


def test_the_device_decoder_is_within_a_few_levels_of_pillow(tmp_path: Path) -> None:
    items = image_files(tmp_path / "jpegs", n=5, size=96, fmt="jpg")
    pillow = np.stack([items.read_at(i, 64) for i in range(5)]).astype(np.int16)
    decoded, failed = decode_jpegs(list(items.ids), 64, CPU)
    assert failed == {} and decoded.shape == (5, 64, 64, 3) and decoded.dtype == torch.uint8
    difference = np.abs(decoded.numpy().astype(np.int16) - pillow)
    assert difference.mean() < 2.0 and np.percentile(difference, 99) <= 8  # another IDCT and resampling
    # a non-square image is centre-cropped as Pillow's path does
    wide = torch.zeros(1, 3, 10, 20, dtype=torch.uint8)
    wide[..., 5:15] = 200
    assert square_resize(wide, 10).shape == (1, 10, 10, 3) and torch.all(square_resize(wide, 10) == 200)
    # files of two shapes in one batch
    Image.fromarray(synthetic_tile(0, 80, np.random.default_rng(1))).save(tmp_path / "other.jpg")
    mixed, _ = decode_jpegs([items.ids[0], str(tmp_path / "other.jpg"), items.ids[1]], 64, CPU)
    assert torch.equal(mixed[0], decoded[0]) and torch.equal(mixed[2], decoded[1])
    assert (
        np.abs(mixed[1].numpy().astype(int) - FileItems((str(tmp_path / "other.jpg"),)).read_at(0, 64)).mean()
        < 2
    )


def test_the_device_decoder_reads_other_items_with_pillow_and_reports_bad_jpegs(tmp_path: Path) -> None:
    jpegs = image_files(tmp_path / "j", n=3, size=48, fmt="jpg")
    pngs = image_files(tmp_path / "p", n=2, size=48, fmt="png")
    Path(jpegs.ids[1]).write_bytes(Path(jpegs.ids[1]).read_bytes()[:200])  # truncated
    items = FileItems(jpegs.ids + pngs.ids)
    streamed = StreamedImages(items, 32, decoder="device")
    assert streamed.jpeg_file(0) == jpegs.ids[0] and streamed.jpeg_file(3) is None
    images, bad = streamed.read_tensor(np.arange(5), CPU)
    assert [row for row, _ in bad] == [1] and jpegs.ids[1] in str(bad[0][1])
    assert not images[1].any()
    assert torch.equal(images[3], torch.from_numpy(items.read_at(3, 32)))  # a PNG: Pillow's pixels
    assert np.abs(images[0].numpy().astype(int) - items.read_at(0, 32)).mean() < 2.0
    # its pixels are not Pillow's: caches of their own
    assert stream_fingerprint("abc", "pil") == "abc" and stream_fingerprint("abc", "device") != "abc"
    with pytest.raises(ValueError, match="unknown decoder"):
        StreamedImages(items, 32, decoder="nvjpeg")


def test_which_runs_stream_their_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    def cfg(**values: object) -> DataConfig:
        return DataConfig(path="x", image_size=224, **values)  # type: ignore[arg-type]

    million = 1_000_000  # 150 GB of decoded pixels at 224 px
    assert streams_pixels(cfg(), million, pixels_needed=False)
    assert not streams_pixels(cfg(), million, pixels_needed=True)  # fine-tuning reads them every epoch
    assert not streams_pixels(cfg(), 1_000, pixels_needed=False)  # 150 MB: kept, as before
    assert not streams_pixels(cfg(pixel_cache="keep"), million, pixels_needed=False)
    assert streams_pixels(cfg(pixel_cache="stream"), 10, pixels_needed=False)
    assert streams_pixels(cfg(decoder="device"), 10, pixels_needed=False)
    monkeypatch.setattr(prepare_module, "STREAM_ABOVE_BYTES", 100)
    assert streams_pixels(cfg(), 1, pixels_needed=False)


def test_a_streamed_run_writes_no_image_cache_and_leaves_unreadable_items_out(
    make_image_folder, tmp_path: Path
) -> None:
    root = make_image_folder(classes={"red": 6, "green": 6}, size=32)
    cache = tmp_path / "cache"
    streamed = DataConfig(path=str(root), image_size=32, cache_dir=str(cache), pixel_cache="stream")
    data = prepare_data(streamed, 0, pixels_needed=False)
    assert data.store.streamed and not list(cache.glob("*.npy"))  # only the files' hashes are kept
    kept = prepare_data(DataConfig(path=str(root), image_size=32, cache_dir=str(cache)), 0)
    assert not kept.store.streamed and data.store.fingerprint == kept.store.fingerprint
    assert np.array_equal(data.split, kept.split)
    assert np.array_equal(data.store.get(np.arange(12)), kept.store.get(np.arange(12)))

    bad_row = 4
    reason = {bad_row: "truncated"}
    with pytest.raises(
        DataError, match=r"1 image\(s\) cannot be read \(found while their pixels were streamed"
    ):
        data.leave_out_unreadable(reason, skip=False)
    before = data.split.copy()
    data.leave_out_unreadable(reason, skip=True)
    assert data.split[bad_row] == UNREADABLE and bad_row not in data.idx_train
    assert bad_row not in np.concatenate([data.idx_val, data.idx_test, data.idx_unlabelled_extra])
    assert np.array_equal(np.delete(data.split, bad_row), np.delete(before, bad_row))  # nothing redrawn
    assert [e.path for e in data.bad] == [data.catalogue.ids[bad_row]]
    data.leave_out_unreadable(reason, skip=False)  # already left out: nothing to say
