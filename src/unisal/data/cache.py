"""Decode and resize every image once into a memory-mapped uint8 cache."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unisal.data.images import BadImageError
from unisal.data.items import ItemSource, as_items, holder_state
from unisal.errors import CacheError, RunError
from unisal.events import message, track
from unisal.io import atomic_path, check_creatable, file_marker, remove_stale_temporaries, write_json_atomic


def default_cache_dir() -> Path:
    """``$UNISAL_CACHE``, else ``$XDG_CACHE_HOME/unisal``, else ``~/.cache/unisal``."""
    if os.environ.get("UNISAL_CACHE"):
        return Path(os.environ["UNISAL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "unisal"


def cache_key(items: ItemSource | Sequence[str], size: int) -> str:
    """Changes when any item is added or removed, the file holding one is resized, touched or
    rewritten, or the size changes.

    A file's state is its size, modification time, inode and inode change time
    (``unisal.data.items.holder_state``): a file rewritten at the same size with its old
    modification time put back (``touch -r``) still changes its ctime, which no user can set.
    Ids count as absolute paths, so the same files give the same key from any directory.
    """
    items = as_items(items)
    digest = hashlib.sha1(f"v2 size={size}".encode())
    for i, item_id in enumerate(items.ids):
        digest.update(f"{os.path.abspath(item_id)}|{holder_state(items.holder(i))}\n".encode())
    return digest.hexdigest()[:20]


def read_rows(array: np.ndarray, rows: np.ndarray, dtype: np.typing.DTypeLike | None = None) -> np.ndarray:
    """``array[rows]`` (B, ...) as ``dtype`` (default the array's), read in ascending row order.

    Sorted reads are kinder to the page cache of a memory-mapped array.
    """
    order = np.argsort(rows)
    out = np.empty((len(rows), *array.shape[1:]), dtype or array.dtype)
    out[order] = array[rows[order]]
    return out


@dataclass
class ImageStore:
    """Decoded images of a catalogue, read by catalogue index.

    Attributes:
        array: uint8 array (memory-mapped), shape (N_files, S, S, 3).
        rows: row of ``array`` for each catalogue index, shape (N,).
        fingerprint: identifies the content of ``array`` (the cache key); derived caches such
            as the feature cache are keyed by it. Empty: hash the array itself.
        unreadable: rows of ``array`` that could not be decoded (zero there), with the reason;
            recorded by the caches derived from it, so that a run that streams its pixels
            (``array`` a :class:`unisal.data.stream.StreamedImages`) and reuses them knows them.
    """

    array: np.ndarray
    rows: np.ndarray
    fingerprint: str = ""
    unreadable: dict[int, str] = field(default_factory=dict)

    @property
    def streamed(self) -> bool:
        """True when the pixels are decoded from the items as they are read (no image cache)."""
        return not isinstance(self.array, np.ndarray)

    def content_key(self) -> str:
        """``fingerprint``, or a hash of the pixels for stores built in memory."""
        if self.fingerprint:
            return self.fingerprint
        digest = hashlib.sha1(f"{self.array.shape}".encode())
        digest.update(np.ascontiguousarray(self.array).tobytes())
        return digest.hexdigest()[:20]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def image_size(self) -> int:
        return int(self.array.shape[1])

    def get(self, idx: np.ndarray) -> np.ndarray:
        """uint8 images (B, S, S, 3) for catalogue indices ``idx`` (B,)."""
        return read_rows(self.array, self.rows[np.asarray(idx)])


def _decode(items: ItemSource, i: int, size: int) -> np.ndarray | BadImageError:
    try:
        return items.read_at(i, size)
    except BadImageError as error:
        return error


SAMPLE_ROWS = 64  # rows whose checksum a cache's completion record holds


def sample_checksum(array: np.ndarray) -> str:
    """SHA-1 of up to ``SAMPLE_ROWS`` evenly spaced rows (and the shape): a cache zeroed or
    overwritten at the same size no longer matches."""
    rows = np.unique(np.linspace(0, len(array) - 1, num=min(SAMPLE_ROWS, len(array))).astype(np.int64))
    digest = hashlib.sha1(str(array.shape).encode())
    digest.update(np.ascontiguousarray(array[rows]).tobytes())
    return digest.hexdigest()


# A cache is found by its images' bytes, so another folder holding the same files finds it too: its
# bad-image list is kept by row, with this marker where a reason named the file.
THIS_FILE = "<this file>"


def bad_records(ids: Sequence[str], bad: list[tuple[int, BadImageError]]) -> list[dict[str, Any]]:
    """``bad.json``'s rows: the catalogue row of each bad item and a reason that names no path."""
    return [{"row": i, "reason": e.reason.replace(ids[i], THIS_FILE)} for i, e in bad]


def bad_images(ids: Sequence[str], records: list[dict[str, Any]]) -> list[BadImageError]:
    """The bad items of ``ids`` (this catalogue's) from ``bad.json``'s rows."""
    out = []
    for r in records:
        row = r["row"]
        if not isinstance(row, int) or not 0 <= row < len(ids):
            raise ValueError(f"row {row!r} is outside the catalogue")
        out.append(BadImageError(ids[row], str(r["reason"]).replace(THIS_FILE, ids[row])))
    return out


def _open_cache(
    target: Path, bad_file: Path, done_file: Path, ids: Sequence[str], shape: tuple[int, ...]
) -> tuple[np.ndarray, list[BadImageError]] | str:
    """A complete, intact cache; else why not (a reason to rebuild)."""
    try:
        array = np.load(target, mmap_mode="r")
        bad = bad_images(ids, json.loads(bad_file.read_text()))
    except KeyError:  # a list by path, of an older version: it may name another folder's files
        return "its bad-image list is of an older version"
    except (OSError, ValueError, TypeError) as exc:
        return f"it is damaged ({str(exc).splitlines()[0][:120]})"
    if tuple(array.shape) != shape or array.dtype != np.uint8:
        return f"it holds {array.shape} {array.dtype}, not {shape} uint8"
    checksum = sample_checksum(array)
    try:
        record = json.loads(done_file.read_text())
    except (
        FileNotFoundError
    ):  # a cache from before completion records: complete, since bad.json is written last
        write_json_atomic(done_file, {"shape": list(shape), "sample_sha1": checksum})
        return array, bad
    except (OSError, ValueError) as exc:
        return f"its completion record is damaged ({exc})"
    if record.get("sample_sha1") != checksum:
        return "its content changed since it was written (checksum of sampled rows)"
    return array, bad


def _writable_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CacheError(
            f"cannot write the image cache in {folder} ({exc.strerror or exc}); "
            "choose a writable folder with --cache-dir or $UNISAL_CACHE"
        ) from exc


def reserve_space(path: Path, n_bytes: int, folder: Path, what: str = "image cache") -> None:
    """Allocate the file's blocks now: a full disk is a clear error here, not a SIGBUS later
    when a memory-mapped write finds no block."""
    free = shutil.disk_usage(folder).free
    if n_bytes > free:
        raise CacheError(
            f"the {what} needs {n_bytes / 1e9:.2f} GB but {folder} has {free / 1e9:.2f} GB free; "
            "free some space or choose another folder with --cache-dir"
        )
    try:
        with path.open("r+b") as handle:
            os.posix_fallocate(handle.fileno(), 0, n_bytes)
    except OSError as exc:
        raise CacheError(f"cannot reserve {n_bytes / 1e9:.2f} GB for the {what} in {folder}: {exc}") from exc


def build_cache(
    items: ItemSource | Sequence[str],
    size: int,
    cache_dir: str | Path | None = None,
    workers: int = 4,
    key: str | None = None,
) -> tuple[np.ndarray, list[BadImageError]]:
    """Decode ``items`` to (N, size, size, 3) uint8 on disk, or reuse an identical earlier cache.

    Bad files leave a zero image in their row and are returned, so that the caller decides
    whether to stop or to skip them. Writes go to a temporary file (its space reserved first)
    that is renamed when complete; a completion record with a checksum of sampled rows is
    written last. A damaged, truncated or altered cache is rebuilt with a message, and the
    temporary files of killed builds are removed.

    Args:
        key: ``image_cache_key(items, size, cache_dir)[0]`` if the caller has it already.

    Returns:
        The memory-mapped array and the list of files that could not be decoded.

    Raises:
        CacheError: the folder is not writable or the disk too full.
    """
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    try:  # before any look inside: a name too long makes even ``is_file`` raise
        check_creatable(folder, what="the cache folder")
    except RunError as exc:
        raise CacheError(f"{exc}; choose another folder with --cache-dir or $UNISAL_CACHE") from None
    items = as_items(items)
    key = key or image_cache_key(items, size, cache_dir)[0]
    ids = items.ids
    target, bad_file = folder / f"{key}.npy", folder / f"{key}.bad.json"
    done_file, legacy_done = file_marker(target), folder / f"{key}.done.json"  # legacy: before issue 16
    if legacy_done.is_file() and not done_file.is_file():
        done_file = legacy_done
    shape = (len(items), size, size, 3)
    if target.is_file() and bad_file.is_file():
        opened = _open_cache(target, bad_file, done_file, ids, shape)
        if not isinstance(opened, str):
            return opened
        message(f"rebuilding the image cache {target.name}: {opened}")
    _writable_folder(folder)
    for stale in remove_stale_temporaries(folder):
        message(f"removed {stale.name}, left by a build that was killed")
    done_file = file_marker(target)
    for old in (done_file, legacy_done, bad_file):
        old.unlink(missing_ok=True)
    bad: list[tuple[int, BadImageError]] = []
    try:
        with atomic_path(target) as tmp:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            reserve_space(tmp, tmp.stat().st_size, folder)
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = pool.map(lambda i: _decode(items, i, size), range(len(items)), chunksize=32)
                for i, result in enumerate(
                    track(results, f"decoding images to {size}px", total=len(items), unit="img", long=True)
                ):
                    if isinstance(result, BadImageError):
                        bad.append((i, result))
                        array[i] = 0
                    else:
                        array[i] = result
            array.flush()
            checksum = sample_checksum(array)
            del array
        write_json_atomic(bad_file, bad_records(ids, bad))
        write_json_atomic(done_file, {"shape": list(shape), "sample_sha1": checksum})
    except CacheError:
        raise
    except OSError as exc:
        raise CacheError(
            f"writing the image cache in {folder} failed ({exc}); free space or choose --cache-dir"
        ) from exc
    return np.load(target, mmap_mode="r"), [e for _, e in bad]


def content_hashes(
    items: ItemSource, key: str, cache_dir: str | Path | None = None, workers: int = 4
) -> list[str]:
    """SHA-1 of every item's own bytes (N,; empty where it has none), computed once per image
    cache and kept beside it (``.sha1.json``)."""
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    record = folder / f"{key}.sha1.json"
    try:
        hashes = json.loads(record.read_text())
        if isinstance(hashes, list) and len(hashes) == len(items):
            return [str(h) for h in hashes]
    except (OSError, ValueError):
        pass
    with ThreadPoolExecutor(max_workers=workers) as pool:
        hashes = list(pool.map(items.content_sha1, range(len(items)), chunksize=64))
    with contextlib.suppress(OSError):  # a read-only cache: hash again next time
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(record, hashes)
    return hashes


def image_cache_key(
    items: ItemSource | Sequence[str], size: int, cache_dir: str | Path | None = None
) -> tuple[str, list[str]]:
    """The decoded-image cache's key, and the SHA-1 of every file (N,).

    The key hashes the files' bytes, in catalogue order, and the size: a copy of the same data
    (new paths, new modification times) finds the caches already built, feature caches
    included. The bytes are read once per state of the files (paths, sizes, times and inodes:
    the path-based ``cache_key``), and their hashes kept as ``<that key>.sha1.json``. Where a file
    has no hash of its own (an image inside an .npz, an unreadable file), the key is the
    path-based one.
    """
    items = as_items(items)
    by_path = cache_key(items, size)
    hashes = content_hashes(items, by_path, cache_dir)
    if not len(items) or not all(hashes):
        return by_path, hashes
    digest = hashlib.sha1(f"v2 content size={size}".encode())
    for h in hashes:
        digest.update(f"{h}\n".encode())
    return digest.hexdigest()[:20], hashes


def join_identical(groups: np.ndarray, hashes: list[str]) -> tuple[np.ndarray, int, int]:
    """Groups (N,) in which byte-identical files share one group (union of their groups).

    Returns:
        The new group ids, how many sets of identical files there are, and how many of them
        spanned more than one group (and so joined groups).
    """
    parent = {int(g): int(g) for g in np.unique(groups)}

    def find(g: int) -> int:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    by_hash: dict[str, list[int]] = {}
    for i, h in enumerate(hashes):
        if h:
            by_hash.setdefault(h, []).append(i)
    sets = [members for members in by_hash.values() if len(members) > 1]
    joined = 0
    for members in sets:
        roots = {find(int(groups[i])) for i in members}
        if len(roots) > 1:
            joined += 1
            first, *rest = sorted(roots)
            for r in rest:
                parent[r] = first
    return np.asarray([find(int(g)) for g in groups], np.int64), len(sets), joined
