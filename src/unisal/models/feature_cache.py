"""The feature cache of a frozen backbone: built once per data set, backbone and view set.

The cache is keyed by the backbone, its weights, the view set and the decoded images it reads
(the decoded-image cache's key, from the files' bytes or states and the image size; pixels streamed
from the same files share it, being the same pixels), so
it is shared by every run, round, strategy and seed on the same data. Extraction runs in chunks
of ``batch_size`` images (memory bounded by the batch, not the data set) and writes shards of
``shard_images`` images, each with its own record (:mod:`unisal.models.feature_shards`), in this process or
on Ray workers; a kill loses at most the shard being written, and the next build resumes. The
cache counts as complete only once the shards are assembled and an atomically written marker says
so: a half-written or stale cache is never read.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from unisal.config import ModelConfig
from unisal.data.cache import THIS_FILE, ImageStore, default_cache_dir, sample_checksum
from unisal.data.stream import BadRows, StreamedImages, prefetched, read_rows_to
from unisal.data.views import to_float
from unisal.errors import CacheError
from unisal.events import Task, message
from unisal.io import folder_marker, read_json_object, write_json_atomic
from unisal.models import feature_shards
from unisal.models.features import CROP_SEED, FeatureStore, ViewSpec, crop_matrices, view_features

if TYPE_CHECKING:
    from unisal.models.inference import Forward

FORMAT_VERSION = 1


def feature_cache_key(image_key: str, model: ModelConfig, spec: ViewSpec) -> str:
    """Changes with the decoded images, the backbone, its weights and the view set."""
    from unisal.models.backbones import weights_identity

    parts = {
        # version 2 where crops are cached: since issue 16 they are the same for every image
        "version": FORMAT_VERSION if spec.crops == 0 else 2,
        "images": image_key,
        "backbone": model.backbone,
        "weights": weights_identity(model.backbone, model.pretrained, model.weights),
        "views": asdict(spec),
        "crop_seed": CROP_SEED,
    }
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def _open_complete(folder: Path, key: str, store: ImageStore) -> FeatureStore | None:
    """The complete, intact cache in ``folder``; None (with a message where it was damaged) when
    it is missing, foreign, truncated or its sampled rows no longer match their checksum, or, for
    streamed pixels, when it was written before caches recorded their unreadable rows."""
    marker = read_json_object(folder_marker(folder))
    if marker is None or marker.get("key") != key:
        return None
    if store.streamed and "unreadable" not in marker:
        message(
            f"extracting the feature cache {folder.name} again: it was built before caches recorded "
            "their unreadable images, which a run that streams its pixels must know"
        )
        return None
    try:
        array = np.load(folder / "features.npy", mmap_mode="r")
    except (OSError, ValueError) as exc:
        message(
            f"rebuilding the feature cache {folder.name}: it is damaged ({str(exc).splitlines()[0][:120]})"
        )
        return None
    if list(array.shape) != marker.get("shape") or array.dtype != np.float16:
        message(
            f"rebuilding the feature cache {folder.name}: it holds {array.shape}, not {marker.get('shape')}"
        )
        return None
    checksum = sample_checksum(array)
    if "sample_sha1" not in marker:  # written before checksums: record it now
        marker["sample_sha1"] = checksum
        write_json_atomic(folder_marker(folder), marker, indent=2)
    elif marker["sample_sha1"] != checksum:
        message(f"rebuilding the feature cache {folder.name}: its content changed since it was written")
        return None
    return FeatureStore(array, store.rows, marker, folder)


@torch.inference_mode()
def _extract(
    forward: Forward,
    images_u8: torch.Tensor,
    crops: torch.Tensor,
    spec: ViewSpec,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    device: torch.device,
) -> np.ndarray:
    """float16 (B, V, F) features of every view of a uint8 batch (B, S, S, 3) on ``device``."""
    features = view_features(to_float(images_u8), spec, crops.to(device), forward, mean, std)
    return features.to(torch.float16).cpu().numpy()


@dataclass
class ShardWork:
    """What an extractor is asked: write ``shards`` [(lo, hi), ...] of the cache of ``shape``
    (N, V, F) in ``folder`` (:mod:`unisal.models.feature_shards`) from the images of ``store``."""

    store: ImageStore
    model: ModelConfig
    spec: ViewSpec
    device: torch.device
    folder: Path
    shape: list[int]
    shards: list[tuple[int, int]]
    batch_size: int
    engine: str

    @property
    def images_left(self) -> int:
        return sum(hi - lo for lo, hi in self.shards)


# writes a ShardWork's shards, given the backbone built here: (the engine used, threads per worker);
# ``extract_here`` in this process, ``unisal.models.ray_features.OnRay`` on Ray workers
Extractor = Callable[[ShardWork, torch.nn.Module], tuple[str, int]]


def feature_backbone(model: ModelConfig, device: torch.device) -> torch.nn.Module:
    """The backbone of ``model`` in eval mode on ``device`` (channels-last on CUDA)."""
    from unisal.models.backbones import create_backbone

    backbone = create_backbone(model.backbone, model.pretrained, model.weights).eval().to(device)
    return backbone.to(memory_format=torch.channels_last) if device.type == "cuda" else backbone


class ViewExtractor:
    """A backbone ready to extract every view of rows of decoded images (N, S, S, 3) uint8: a
    memory-mapped decoded-image cache, or items decoded as they are read
    (:class:`unisal.data.stream.StreamedImages`); its forward function (the engine chosen for
    ``n_views`` views), normalisation and the crops."""

    def __init__(
        self, backbone: torch.nn.Module, images: np.ndarray | StreamedImages, spec: ViewSpec,
        device: torch.device, *, engine: str, n_views: int, unreadable: dict[int, str] | None = None,
    ) -> None:  # fmt: skip
        """``unreadable``: rows of ``images`` already known to be black (the decoded-image cache's
        bad files), recorded by the shards with those found while reading."""
        from unisal.models.backbones import normalisation
        from unisal.models.inference import backbone_forward

        self.images, self.spec, self.device = images, spec, device
        self.known_unreadable = dict(unreadable or {})
        self.mean, self.std = normalisation(backbone)
        self.crops = crop_matrices(int(images.shape[0]), spec)
        self.forward, self.engine = backbone_forward(
            backbone, engine=engine, device=device, image_size=int(images.shape[1]), n_views=n_views
        )

    def batches(self, lo: int, hi: int, batch_size: int) -> Iterator[tuple[np.ndarray, BadRows]]:
        """float16 (B, V, F) features of images lo..hi - 1, a batch of ``batch_size`` at a time,
        and the rows of the batch that could not be read (their features are those of a black
        image). The next batches are read (decoded, copied to the device) while one computes."""

        def read(bounds: tuple[int, int]) -> tuple[torch.Tensor, BadRows]:
            return read_rows_to(self.images, bounds[0], bounds[1], self.device)

        ranges = list(feature_shards.batches(lo, hi, batch_size))
        for (begin, end), (images, bad) in zip(ranges, prefetched(read, ranges), strict=True):
            if images.is_cuda:  # allocated on the reading thread's stream, used on this one
                images.record_stream(torch.cuda.current_stream(images.device))
            features = _extract(self.forward, images, self.crops[begin:end], self.spec, self.mean,
                                self.std, self.device)  # fmt: skip
            yield features, bad

    def shard(self, folder: Path, lo: int, hi: int, batch_size: int, advance: Callable[[int], None]) -> None:
        """Extract and write shard (lo, hi), calling ``advance(n)`` after each batch of n images."""
        start, parts = time.perf_counter(), []
        unreadable = {row: why for row, why in self.known_unreadable.items() if lo <= row < hi}
        for part, bad in self.batches(lo, hi, batch_size):
            parts.append(part)
            unreadable |= {row: error.reason.replace(error.path, THIS_FILE) for row, error in bad}
            advance(len(part))
        feature_shards.write_shard(
            folder, lo, hi, np.concatenate(parts), time.perf_counter() - start, unreadable=unreadable
        )


def extract_here(work: ShardWork, backbone: torch.nn.Module) -> tuple[str, int]:
    """Extract and write the shards in this process, with a progress bar."""
    n_images = int(work.store.array.shape[0])
    views = ViewExtractor(backbone, work.store.array, work.spec, work.device, engine=work.engine,
                          n_views=work.images_left * work.spec.n_views,
                          unreadable=work.store.unreadable)  # fmt: skip
    what = f"features {work.model.backbone} {work.spec.describe()}"
    if work.store.streamed:
        what += " (decoding as it goes)"
    with Task(what, n_images, unit="img", done=n_images - work.images_left, long=True) as task:
        for lo, hi in work.shards:
            views.shard(work.folder, lo, hi, work.batch_size, task.advance)
    return views.engine, torch.get_num_threads()


def build_feature_cache(
    store: ImageStore,
    model: ModelConfig,
    *,
    spec: ViewSpec,
    device: torch.device,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    engine: str = "auto",
    shard_images: int | None = None,
    extractor: Extractor | None = None,
) -> FeatureStore:
    """Features of every view of every image in ``store``: reused when complete, else built or resumed.

    Args:
        store: decoded images; features are computed for all rows of ``store.array``.
        model: backbone name and weights (``drop_rate`` is irrelevant: the backbone is in eval mode).
        spec: views per image.
        device: where the backbone runs (AMP and channels-last on CUDA).
        cache_dir: parent folder; default the user cache (``$UNISAL_CACHE``).
        batch_size: images per chunk; each chunk is ``V`` forward passes of this many images.
        engine: what runs the backbone (:func:`unisal.models.inference.backbone_forward`); not
            part of the key: every engine gives the same features within float16 rounding.
        shard_images: images per shard (default ``feature_shards.SHARD_IMAGES``).
        extractor: what writes the missing shards (:data:`Extractor`): this process by
            default, Ray workers with ``unisal.models.ray_features.OnRay``; the cache is the
            same either way, written in shards (:mod:`unisal.models.feature_shards`).

    Returns:
        The store, memory-mapped read-only; ``info`` says how long the build took.
    """
    key = feature_cache_key(store.content_key(), model, spec)
    folder = (Path(cache_dir) if cache_dir else default_cache_dir()) / "features" / key
    folder.mkdir(parents=True, exist_ok=True)
    with feature_shards.exclusive(folder / ".lock"):
        done_store = _open_complete(folder, key, store)
        if done_store is not None:
            done_store.info["reused"] = True
            feature_shards.remove_shards(folder)  # left by a kill after the marker was written
            return done_store
        (folder_marker(folder)).unlink(missing_ok=True)  # whatever is there is not a whole cache
        (folder / "features.npy").unlink(missing_ok=True)  # the shards, not it, hold what was done
        backbone = feature_backbone(model, device)
        n_images = int(store.array.shape[0])
        shape = [n_images, spec.n_views, int(backbone.num_features)]  # type: ignore[arg-type]
        meta: dict[str, Any] = {
            "key": key,
            "shape": shape,
            "backbone": model.backbone,
            "weights": model.weights,
            "pretrained": model.pretrained,
            "views": spec.describe(),
            "image_size": int(store.array.shape[1]),
        }
        (folder / "progress.json").unlink(missing_ok=True)  # a build from before shards: restarts
        bounds = feature_shards.shard_bounds(n_images, shard_images)
        # a streamed run cannot tell which rows of a shard from before the records are black
        todo = feature_shards.missing(folder, bounds, shape, records_unreadable=store.streamed)
        if len(todo) < len(bounds):
            done = n_images - sum(hi - lo for lo, hi in todo)
            message(f"resuming the feature cache: {done} of {n_images} images done")
        start = time.perf_counter()
        work = ShardWork(store, model, spec, device, folder, shape, todo, batch_size, engine)
        itemsize = 2 * spec.n_views * shape[2]  # float16 bytes per image
        feature_shards.check_space(folder, itemsize * (work.images_left + n_images) + 2**20)
        engine_used, threads = (extractor or extract_here)(work, backbone)
        left = feature_shards.missing(folder, bounds, shape, records_unreadable=store.streamed)
        if left:
            raise CacheError(
                f"{len(left)} shard(s) of the feature cache in {folder} are missing after extraction "
                f"(first: images {left[0][0]}-{left[0][1] - 1}); workers must write to a folder the driver "
                "sees. Run the command again: the shards written are kept"
            )
        path = feature_shards.assemble(folder, shape, bounds)
        seconds = time.perf_counter() - start
        extracted = sum(hi - lo for lo, hi in todo)
        meta |= {
            "seconds": round(seconds, 2),
            "images_per_second": round(extracted / seconds, 2) if seconds > 0 and extracted else None,
            "views_per_second": round(extracted * spec.n_views / seconds, 2)
            if seconds > 0 and extracted
            else None,
            "device": str(device),
            "engine": engine_used,
            "threads": threads,
            "executor": getattr(extractor, "name", "local"),
            "shards": len(bounds),
            "resumed_shards": len(bounds) - len(todo),
            "streamed": store.streamed,
            # rows of zero (black) images: known from the decoded-image cache, or found by the shards
            "unreadable": sorted(
                [row, reason]
                for row, reason in (store.unreadable | feature_shards.unreadable(folder, bounds)).items()
            ),
        }
        meta["sample_sha1"] = sample_checksum(np.load(path, mmap_mode="r"))
        write_json_atomic(folder_marker(folder), meta, indent=2)
        feature_shards.remove_shards(folder)
        built = _open_complete(folder, key, store)
        assert built is not None, "a feature cache just written must open"
        return built
