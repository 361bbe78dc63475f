"""Decode and resize every image once into a memory-mapped uint8 cache."""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from unisal.data.images import NPZ_SEPARATOR, BadImageError, load_rgb, resize_square
from unisal.io import atomic_path, write_json_atomic


def default_cache_dir() -> Path:
    """``$UNISAL_CACHE``, else ``$XDG_CACHE_HOME/unisal``, else ``~/.cache/unisal``."""
    if os.environ.get("UNISAL_CACHE"):
        return Path(os.environ["UNISAL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "unisal"


def cache_key(paths: list[str], size: int) -> str:
    """Changes when any file is added, removed, resized or touched, or the size changes.

    Paths count as absolute paths, so the same files give the same key from any directory.
    """
    digest = hashlib.sha1(f"v1 size={size}".encode())
    for p in paths:
        p = os.path.abspath(p)
        try:
            st = os.stat(p.partition(NPZ_SEPARATOR)[0])  # an image inside an .npz: the file's stat
            digest.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{p}|missing\n".encode())
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
    """

    array: np.ndarray
    rows: np.ndarray
    fingerprint: str = ""

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


def _decode(path: str, size: int) -> np.ndarray | BadImageError:
    try:
        return resize_square(load_rgb(path), size)
    except BadImageError as error:
        return error


def build_cache(
    paths: list[str],
    size: int,
    cache_dir: str | Path | None = None,
    workers: int = 4,
    progress: bool = True,
    key: str | None = None,
) -> tuple[np.ndarray, list[BadImageError]]:
    """Decode ``paths`` to (N, size, size, 3) uint8 on disk, or reuse an identical earlier cache.

    Bad files leave a zero image in their row and are returned, so that the caller decides
    whether to stop or to skip them. Writes go to a temporary file that is renamed when
    complete, so a killed build never leaves a half-written cache behind.

    Args:
        key: ``cache_key(paths, size)`` if the caller has it already.

    Returns:
        The memory-mapped array and the list of files that could not be decoded.
    """
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    key = key or cache_key(paths, size)
    target, bad_file = folder / f"{key}.npy", folder / f"{key}.bad.json"
    if target.is_file() and bad_file.is_file():
        bad_records = json.loads(bad_file.read_text())
        return np.load(target, mmap_mode="r"), [BadImageError(r["path"], r["reason"]) for r in bad_records]
    bad: list[BadImageError] = []
    with atomic_path(target) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = pool.map(lambda p: _decode(p, size), paths, chunksize=32)
            for i, result in enumerate(
                tqdm(results, total=len(paths), desc=f"decoding images to {size}px", disable=not progress)
            ):
                if isinstance(result, BadImageError):
                    bad.append(result)
                    array[i] = 0
                else:
                    array[i] = result
        array.flush()
        del array
    write_json_atomic(bad_file, [{"path": e.path, "reason": e.reason} for e in bad])
    return np.load(target, mmap_mode="r"), bad
