"""The view-averaged features that ``mean`` predictions read, kept memory-mapped beside the
feature cache (``mean.npy``), so that predicting a pool holds none of them in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from unisal.data.cache import reserve_space
from unisal.errors import UnisalError
from unisal.events import message
from unisal.io import atomic_path, file_marker, read_json_object, remove_stale_temporaries, write_json_atomic
from unisal.models.feature_shards import exclusive
from unisal.models.features import FeatureStore, prediction_views


def _mean_of_views(array: np.ndarray, out: np.ndarray) -> None:
    """``out`` (N, F) float32 = the mean over the views of ``array`` (N, V, F), in chunks."""
    for start in range(0, len(array), 4096):
        chunk = torch.from_numpy(np.asarray(array[start : start + 4096], np.float32))
        out[start : start + 4096] = prediction_views(chunk, "mean")[0].numpy()


def view_means(store: FeatureStore) -> np.ndarray:
    """(N_files, F) float32: every cached row's features averaged over its views (what ``mean``
    predictions see). Kept as ``mean.npy`` beside the cache, memory-mapped, so that predicting a
    pool holds none of it in memory: written once under the cache's lock (space reserved first,
    then its completion record naming the features it averages), rebuilt when damaged or of
    other features; computed in memory for a store without a folder, or where the folder cannot
    be written."""
    shape = (int(store.array.shape[0]), int(store.array.shape[2]))
    if store.folder is not None:
        try:
            return _kept_view_means(store, store.folder, shape)
        except (OSError, ValueError, UnisalError) as exc:
            message(f"cannot keep the view means beside the feature cache ({exc}); computing them in memory")
    in_memory = np.empty(shape, np.float32)
    _mean_of_views(store.array, in_memory)
    return in_memory


def _complete_view_means(store: FeatureStore, path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """``mean.npy`` memory-mapped when its completion record names these features and it is
    whole; None otherwise (missing, of other features, damaged)."""
    record = read_json_object(file_marker(path))
    if record is None or record.get("features_sha1") != store.info.get("sample_sha1") or not path.is_file():
        return None
    try:
        mean = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    return mean if tuple(mean.shape) == shape and mean.dtype == np.float32 else None


def _kept_view_means(store: FeatureStore, folder: Path, shape: tuple[int, int]) -> np.ndarray:
    path = folder / "mean.npy"
    kept = _complete_view_means(store, path, shape)  # a read-only cache folder serves it too
    if kept is not None:
        return kept
    with exclusive(folder / ".lock"):
        kept = _complete_view_means(store, path, shape)  # another process wrote it meanwhile
        if kept is not None:
            return kept
        file_marker(path).unlink(missing_ok=True)
        remove_stale_temporaries(folder)
        with atomic_path(path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
            reserve_space(tmp, tmp.stat().st_size, folder, "view means")
            _mean_of_views(store.array, out)
            out.flush()
            del out
        write_json_atomic(
            file_marker(path), {"features_sha1": store.info.get("sample_sha1"), "shape": list(shape)}
        )
        return np.load(path, mmap_mode="r")
