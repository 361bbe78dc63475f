"""The feature cache written in shards: one file per shard of images, each with its own
completion record, assembled atomically into the cache's one array (issue 18).

Layout of a cache folder while it is built::

    shards/000000000-000001024.npy    float16 (1024, V, F): images 0..1023, written whole, then renamed
    shards/000000000-000001024.json   its record: rows, shape, checksum, seconds (written last)
    features.npy                      the assembled array (renamed into place when whole)
    complete.json                     the cache's marker (written after features.npy)

A shard counts as done only when its record is there and matches its file, so any number of
processes (one process, or Ray workers on machines sharing the folder) may write different shards
and a kill loses at most the shards being written. ``assemble`` copies the shards into
``features.npy.partial``, renames it into place and only then are the shards removed (after the
marker is written by the caller): a kill at any point leaves either whole shards or a whole cache.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from unisal.data.cache import reserve_space, sample_checksum
from unisal.errors import CacheError
from unisal.events import message
from unisal.io import read_json_object, write_json_atomic

SHARD_IMAGES = 1024  # images per shard: what a kill can lose, a Ray worker's unit of work
SHARDS = "shards"


def shard_bounds(n_images: int, shard_images: int | None = None) -> list[tuple[int, int]]:
    """[(lo, hi), ...] covering 0..n_images in shards of ``shard_images`` (default
    ``SHARD_IMAGES``); independent of the batch size, so a changed batch keeps the shards."""
    size = max(1, shard_images or SHARD_IMAGES)
    return [(lo, min(lo + size, n_images)) for lo in range(0, n_images, size)]


def check_space(folder: Path, n_bytes: int) -> None:
    """CacheError unless ``folder``'s disk has ``n_bytes`` free (shards, then the assembled copy)."""
    free = shutil.disk_usage(folder).free
    if free < n_bytes:
        raise CacheError(
            f"the feature cache needs {n_bytes / 2**30:.1f} GB free in {folder} while it is built "
            f"(shards and the assembled array), but {free / 2**30:.1f} GB are free; free space or "
            "choose another --cache-dir"
        )


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """An OS lock that dies with its process: two runs never build one cache at once."""
    with lock_file.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            message(f"waiting for another process that is building the feature cache {lock_file.parent}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def shard_path(folder: Path, lo: int, hi: int) -> Path:
    return Path(folder) / SHARDS / f"{lo:09d}-{hi:09d}.npy"


def shard_done(folder: Path, lo: int, hi: int, shape: list[int], *, records_unreadable: bool = False) -> bool:
    """True when shard (lo, hi) of a cache of ``shape`` (N, V, F) is whole: its record matches
    its file (shape and sampled checksum), and, with ``records_unreadable``, lists its
    unreadable rows (shards written before records did are extracted again)."""
    path = shard_path(folder, lo, hi)
    record = read_json_object(path.with_suffix(".json"))
    if record is None or (records_unreadable and "unreadable" not in record):
        return False
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    expected = [hi - lo, *shape[1:]]
    return (
        record.get("rows") == [lo, hi]
        and list(array.shape) == expected
        and record.get("shape") == expected
        and record.get("sha1") == sample_checksum(array)
    )


def write_shard(
    folder: Path,
    lo: int,
    hi: int,
    features: np.ndarray,
    seconds: float,
    *,
    unreadable: dict[int, str] | None = None,
) -> None:
    """Write shard (lo, hi): float16 ``features`` (hi - lo, V, F) to a temporary file renamed into
    place, then its record, which lists the rows whose images could not be read (``unreadable``:
    row -> reason; their features are a black image's)."""
    path = shard_path(folder, lo, hi)
    # unique across processes and machines sharing the folder
    partial = path.with_name(f"{path.name}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("wb") as handle:
            np.save(handle, np.asarray(features, np.float16))
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CacheError(f"cannot write the feature cache's shard {path}: {exc.strerror or exc}") from exc
    record = {"rows": [lo, hi], "shape": list(features.shape), "sha1": sample_checksum(features),
              "seconds": round(seconds, 3), "pid": os.getpid(),
              "unreadable": sorted([int(row), str(why)] for row, why in (unreadable or {}).items())}  # fmt: skip
    write_json_atomic(path.with_suffix(".json"), record)


def assemble(folder: Path, shape: list[int], bounds: list[tuple[int, int]]) -> Path:
    """Copy every shard into ``features.npy`` (N, V, F) float16, renamed into place when whole."""
    target = Path(folder) / "features.npy"
    partial = target.with_name("features.npy.partial")
    array = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float16, shape=tuple(shape))
    reserve_space(partial, partial.stat().st_size, Path(folder), "feature cache")
    for lo, hi in bounds:
        array[lo:hi] = np.load(shard_path(folder, lo, hi), mmap_mode="r")
    array.flush()
    del array
    os.replace(partial, target)
    return target


def unreadable(folder: Path, bounds: list[tuple[int, int]]) -> dict[int, str]:
    """The rows that the whole shards of ``bounds`` could not read, with the reason."""
    out: dict[int, str] = {}
    for lo, hi in bounds:
        record = read_json_object(shard_path(folder, lo, hi).with_suffix(".json")) or {}
        out.update({int(row): str(reason) for row, reason in record.get("unreadable", [])})
    return out


def remove_shards(folder: Path) -> None:
    shutil.rmtree(Path(folder) / SHARDS, ignore_errors=True)


def missing(
    folder: Path, bounds: list[tuple[int, int]], shape: list[int], *, records_unreadable: bool = False
) -> list[tuple[int, int]]:
    """The shards of ``bounds`` not yet whole (:func:`shard_done`)."""
    return [
        (lo, hi)
        for lo, hi in bounds
        if not shard_done(folder, lo, hi, shape, records_unreadable=records_unreadable)
    ]


def batches(lo: int, hi: int, batch_size: int) -> Iterator[tuple[int, int]]:
    """[(begin, end), ...] of a shard in batches."""
    for begin in range(lo, hi, batch_size):
        yield begin, min(begin + batch_size, hi)


__all__ = [
    "SHARD_IMAGES",
    "assemble",
    "batches",
    "check_space",
    "exclusive",
    "missing",
    "remove_shards",
    "shard_bounds",
    "shard_done",
    "unreadable",
    "write_shard",
]
