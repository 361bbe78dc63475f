"""Pixels read straight from their items, batch by batch: a pool that is never decoded whole (issue 18).

The decoded-image cache (``unisal.data.cache``) holds every image of a data set at the run's size:
150 GB for a million tiles at 224 px. A learner that reads pixels once (the frozen learner, which
reads them to build its feature cache) does not need it: :class:`StreamedImages` stands in for the
cache's array, decoding the rows asked for from the files or slide tiles with a pool of threads
(Pillow and OpenSlide release the GIL while they decode), and holds none of them afterwards. The
pixels are those the cache would hold (the same ``read_at``), so the feature cache built from them
is the same, under the same key.

With ``decoder="device"`` the JPEG files of a batch are decoded together on the extraction device
(``torchvision.io.decode_jpeg``: nvJPEG on CUDA) and resized there, which keeps a GPU fed where
one CPU thread per image cannot; other items (PNG, TIFF, slide tiles) are decoded as above. Its
pixels differ from Pillow's in the last bits (another IDCT and resampling), so its caches have
keys of their own (:func:`stream_fingerprint`).

:func:`prefetched` reads the next batches in a background thread while the current one computes.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from unisal.config import DECODERS
from unisal.data.items import ItemSource
from unisal.errors import BadImageError, RunError

JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})

BadRows = list[tuple[int, BadImageError]]  # (row, why it cannot be read)


def stream_fingerprint(image_key: str, decoder: str) -> str:
    """The fingerprint of streamed pixels: the decoded-image cache's key for Pillow's (the same
    pixels, so the same feature caches), another for the device decoder's."""
    if decoder == "pil":
        return image_key
    return hashlib.sha1(f"{image_key}|decoder={decoder}".encode()).hexdigest()[:20]


class StreamedImages:
    """The items of ``items`` at ``size`` px, decoded when asked: an array-like of shape
    (N, size, size, 3) uint8 that holds no pixels.

    Indexing (an int, a slice, an int array) decodes those rows and raises BadImageError for one
    that cannot be read; :meth:`read` gives zero rows and the reasons instead, and
    :meth:`read_tensor` the same as a tensor on a device (decoded there with ``decoder="device"``).
    It pickles without its threads (a Ray worker opens the items itself).

    Args:
        items: the source (files, ``.npz`` rows, slide tiles).
        size: the side of the square images.
        decoder: ``pil``, every item through ``items.read_at``; ``device``, JPEG files decoded in
            batches on the device :meth:`read_tensor` is given.
        workers: threads that decode items at once; default the cores this process may use
            where it decodes (a Ray worker counts its own).
    """

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(
        self, items: ItemSource, size: int, *, decoder: str = "pil", workers: int | None = None
    ) -> None:
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder '{decoder}' (one of {', '.join(DECODERS)})")
        self.items, self.size, self.decoder = items, int(size), decoder
        # the cores this process may use (a GPU machine's many feed one GPU); chosen where it decodes
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.items), self.size, self.size, 3)

    def __len__(self) -> int:
        return len(self.items)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_pool", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _pool=None, _lock=threading.Lock())

    def _threads(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                workers = max(1, self.workers or usable_cores())
                self._pool = ThreadPoolExecutor(workers, thread_name_prefix="unisal-decode")
            return self._pool

    def _decode(self, i: int) -> np.ndarray | BadImageError:
        try:
            return self.items.read_at(i, self.size)
        except BadImageError as error:
            return error

    def read(self, rows: np.ndarray) -> tuple[np.ndarray, BadRows]:
        """uint8 (B, S, S, 3) of ``rows`` (B,), decoded with Pillow (zero where an item cannot be
        read), and those rows with the reason."""
        rows = np.asarray(rows, np.int64)
        out = np.zeros((len(rows), self.size, self.size, 3), np.uint8)
        bad: BadRows = []
        decoded = (
            self._threads().map(self._decode, rows.tolist())
            if len(rows) > 1
            else map(self._decode, rows.tolist())
        )
        for b, (row, image) in enumerate(zip(rows.tolist(), decoded, strict=True)):
            if isinstance(image, BadImageError):
                bad.append((row, image))
            else:
                out[b] = image
        return out, bad

    def __getitem__(self, key: Any) -> np.ndarray:
        n = len(self)
        if isinstance(key, slice):
            rows = np.arange(*key.indices(n))
        else:
            rows = np.asarray(key)
            rows = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64)
        flat = np.atleast_1d(rows)
        if len(flat) and (flat.min() < -n or flat.max() >= n):
            raise IndexError(f"rows {flat.min()}..{flat.max()} are outside the {n} items")
        rows = np.where(rows < 0, rows + n, rows)
        images, bad = self.read(np.atleast_1d(rows))
        if bad:
            raise bad[0][1]
        return images[0] if np.ndim(rows) == 0 else images

    def jpeg_file(self, i: int) -> str | None:
        """The path of item ``i`` where it is a JPEG file of its own (what the device decodes)."""
        path = self.items.holder(i)
        return path if self.items.ids[i] == path and Path(path).suffix.lower() in JPEG_SUFFIXES else None

    def read_tensor(self, rows: np.ndarray, device: torch.device) -> tuple[torch.Tensor, BadRows]:
        """uint8 (B, S, S, 3) of ``rows`` (B,) on ``device``, and the rows that cannot be read
        (zero). Pinned and copied without waiting on CUDA; with ``decoder="device"`` the JPEG
        files among them are decoded on ``device`` in one call."""
        rows = np.asarray(rows, np.int64)
        jpegs = (
            {b: p for b, p in enumerate(map(self.jpeg_file, rows.tolist())) if p}
            if self.decoder == "device"
            else {}
        )
        if not jpegs:
            images, bad = self.read(rows)
            return to_device(torch.from_numpy(images), device), bad
        others = np.asarray([b for b in range(len(rows)) if b not in jpegs], np.int64)
        images, bad = self.read(rows[others])
        host = torch.from_numpy(images)
        out = torch.zeros((len(rows), self.size, self.size, 3), dtype=torch.uint8, device=device)
        if len(others):
            out[torch.from_numpy(others).to(device)] = to_device(host, device)
        if jpegs:
            positions = list(jpegs)
            decoded, failed = decode_jpegs([jpegs[b] for b in positions], self.size, device)
            keep = [k for k in range(len(positions)) if k not in failed]
            if keep:
                out[torch.as_tensor([positions[k] for k in keep], device=device)] = decoded[keep]
            for k, error in failed.items():  # nvJPEG refuses some files Pillow reads (e.g. CMYK)
                row = int(rows[positions[k]])
                image = self._decode(row)
                if isinstance(image, BadImageError):
                    bad.append((row, BadImageError(image.path, f"{image.reason}; {error}")))
                else:
                    out[positions[k]] = torch.from_numpy(image).to(device)
        return out, sorted(bad, key=lambda pair: pair[0])


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``batch`` on ``device``: through pinned memory without waiting on CUDA, as it is on a CPU."""
    if device.type != "cuda":
        return batch.to(device)
    return batch.pin_memory().to(device, non_blocking=True)


def square_resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> uint8 (B, size, size, 3): centre-cropped to a square and resized
    bicubic with antialiasing (as ``unisal.data.images.resize_square`` does with Pillow)."""
    h, w = images.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = images[:, :, top : top + side, left : left + side]
    if side != size:
        x = torch.nn.functional.interpolate(
            square.float(), size=(size, size), mode="bicubic", antialias=True, align_corners=False
        )
        square = x.round_().clamp_(0, 255).to(torch.uint8)
    return square.permute(0, 2, 3, 1)


def decode_jpegs(paths: list[str], size: int, device: torch.device) -> tuple[torch.Tensor, dict[int, str]]:
    """JPEG files decoded together on ``device`` (nvJPEG on CUDA) and resized there: uint8
    (B, size, size, 3), zero where a file could not be decoded, and those positions with the reason."""
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError as exc:  # deprecated since torchvision 0.29 in favour of TorchCodec
        raise RunError(f"this torchvision cannot decode JPEG files ({exc}): use --decoder pil") from None

    out = torch.zeros((len(paths), size, size, 3), dtype=torch.uint8, device=device)
    failed: dict[int, str] = {}
    data, good = [], []
    for k, path in enumerate(paths):
        try:
            data.append(torch.from_numpy(np.fromfile(path, np.uint8)))
            good.append(k)
        except OSError as exc:
            failed[k] = f"cannot read the file ({exc.strerror or exc})"
    with warnings.catch_warnings():  # torchvision 0.29 announces TorchCodec on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            images = decode_jpeg(data, mode=ImageReadMode.RGB, device=device) if data else []
        except RuntimeError:  # one bad file fails the batch: find it one by one
            images = []
            for k, raw in zip(list(good), data, strict=True):
                try:
                    images.append(decode_jpeg(raw, mode=ImageReadMode.RGB, device=device))
                except RuntimeError as exc:
                    failed[k] = f"the device's JPEG decoder failed ({str(exc).splitlines()[0][:120]})"
                    good.remove(k)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for position, image in enumerate(images):  # a batch of tiles is mostly of one shape: resized at once
        by_shape.setdefault(tuple(image.shape), []).append(position)
    for positions in by_shape.values():
        resized = square_resize(torch.stack([images[p] for p in positions]), size)
        out[torch.as_tensor([good[p] for p in positions], device=device)] = resized
    return out, failed


T = TypeVar("T")
A = TypeVar("A")


def prefetched(read: Callable[[A], T], jobs: Iterable[A], *, depth: int = 2) -> Iterator[T]:
    """``read(job)`` for every job in order, up to ``depth`` jobs read ahead in a background thread
    while the caller works on the current one (decoding overlaps the backbone's forward pass)."""
    pending: list[Future[T]] = []
    with ThreadPoolExecutor(1, thread_name_prefix="unisal-prefetch") as reader:
        try:
            for job in jobs:
                pending.append(reader.submit(read, job))
                if len(pending) > depth:
                    yield pending.pop(0).result()
            while pending:
                yield pending.pop(0).result()
        finally:
            for future in pending:
                future.cancel()


_side = threading.local()


def _side_stream(device: torch.device) -> torch.cuda.Stream:
    """This thread's own CUDA stream on ``device``: reads (copies, nvJPEG) there overlap the
    backbone's kernels on the default stream."""
    streams = _side.__dict__.setdefault("streams", {})
    if device not in streams:
        streams[device] = torch.cuda.Stream(device)
    return streams[device]


def read_rows_to(
    images: np.ndarray | StreamedImages, lo: int, hi: int, device: torch.device
) -> tuple[torch.Tensor, BadRows]:
    """Rows lo..hi - 1 of a decoded-image array (memory-mapped) or of streamed items, as uint8
    (B, S, S, 3) on ``device``, and the rows that could not be read (zero).

    On CUDA the batch is read on a side stream of this thread and finished before it is returned:
    the caller may use it on any stream, and must ``record_stream`` it there (it was allocated on
    the side stream). The side stream is also idle before each read, because nvJPEG decodes on a
    private stream that does not wait for the stream its output is allocated on."""

    def read() -> tuple[torch.Tensor, BadRows]:
        if isinstance(images, StreamedImages):
            return images.read_tensor(np.arange(lo, hi), device)
        return to_device(torch.from_numpy(np.array(images[lo:hi])), device), []

    if device.type != "cuda":
        return read()
    side = _side_stream(device)
    side.synchronize()
    with torch.cuda.stream(side):
        batch, bad = read()
    side.synchronize()
    return batch, bad
