"""The feature cache's shards on Ray workers (``unisal features --executor ray``).

One actor per worker loads the backbone once and extracts whole shards
(:mod:`unisal.models.feature_shards`), writing each shard file and its record into the cache
folder itself; the driver waits for them and assembles the cache. Actors ask for one GPU each
where the cache is built on CUDA, else ``--threads`` CPUs each (by default the CPUs Ray offers
shared out, one thread per worker: two workers on a 2-core machine). The images are read by every worker from the
decoded-image cache's memory-mapped file (a folder every worker sees), decoded by the worker from
the items themselves where the pixels are streamed (files every worker sees), or, for a store
built in memory, from Ray's object store. A worker that dies is restarted and its shard tried again
(``MAX_RESTARTS``); the shards already written stay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from unisal.config import ModelConfig
from unisal.data.cache import ImageStore
from unisal.data.stream import StreamedImages
from unisal.errors import RunError
from unisal.events import Task
from unisal.models.feature_cache import ShardWork, ViewExtractor, feature_backbone

MAX_RESTARTS = 3


class FeatureWorker:
    """A Ray actor: the backbone on ``device`` and the images, extracting shards on request."""

    def __init__(
        self,
        images: Any,
        model: ModelConfig,
        spec: Any,
        device: str,
        *,
        engine: str,
        threads: int,
        n_views: int,
        unreadable: dict[int, str],
    ) -> None:
        torch.set_num_threads(threads)
        images = np.load(images, mmap_mode="r") if isinstance(images, str) else images
        if isinstance(images, StreamedImages):  # the actor's CPUs, not the node's, decode
            images.workers = threads
        device_ = torch.device(device)
        self.views = ViewExtractor(feature_backbone(model, device_), images, spec, device_, engine=engine,
                                   n_views=n_views, unreadable=unreadable)  # fmt: skip

    def shard(self, folder: str, lo: int, hi: int, batch_size: int) -> tuple[int, str]:
        """Extract and write shard (lo, hi): its image count and the engine used."""
        self.views.shard(Path(folder), lo, hi, batch_size, lambda n: None)
        return hi - lo, self.views.engine


def _images_source(ray: Any, store: ImageStore) -> Any:
    """What a worker opens: the memory-mapped file of the decoded images, the items themselves
    where they are streamed (each worker decodes its own shards), else an object ref."""
    if store.streamed:
        return store.array  # pickled without threads: the items' ids and how to read them
    filename = getattr(store.array, "filename", None)
    if isinstance(store.array, np.memmap) and filename and Path(filename).is_file():
        return str(filename)
    return ray.put(np.ascontiguousarray(store.array))


class OnRay:
    """The feature cache's :data:`~unisal.models.feature_cache.Extractor` on Ray workers, joining
    ``address`` (or a Ray initialised here, or a local instance)."""

    name = "ray"

    def __init__(self, address: str | None = None, *, threads: int | None = None) -> None:
        self.address, self.threads = address, threads

    def __call__(self, work: ShardWork, backbone: torch.nn.Module) -> tuple[str, int]:
        """Write ``work``'s shards on Ray workers: the engines used and the threads per worker."""
        from unisal.distributed import ray_session

        if not work.shards:
            return "none", 0
        with ray_session(self.address) as ray:
            return _run_workers(ray, work, self.threads)


def _run_workers(ray: Any, work: ShardWork, threads_each: int | None) -> tuple[str, int]:
    store, spec, device, shards = work.store, work.spec, work.device, work.shards
    try:
        # the cluster's resources, not those free now: actors wait for theirs
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        gpus = int(ray.cluster_resources().get("GPU", 0)) if device.type == "cuda" else 0
        if device.type == "cuda" and not gpus:
            raise RunError(
                "the feature cache is built on CUDA, but the Ray cluster has no GPU; use --device cpu"
            )
        # CPU workers: --threads each (as many workers as that leaves), else the CPUs shared out
        threads = 1 if gpus else min(cpus, threads_each or max(1, cpus // min(len(shards), cpus)))
        n_workers = max(1, min(len(shards), gpus if gpus else cpus // threads))
        left = sum(hi - lo for lo, hi in shards) * spec.n_views
        worker = ray.remote(FeatureWorker).options(
            num_cpus=threads if not gpus else 1, num_gpus=1 if gpus else 0, max_restarts=MAX_RESTARTS,
            max_task_retries=MAX_RESTARTS,
        )  # fmt: skip
        source = _images_source(ray, store)
        workers = [
            # a GPU actor sees only its own GPU, as cuda:0: the device type, not cuda:N
            worker.remote(
                source,
                work.model,
                spec,
                device.type,
                engine=work.engine,
                threads=threads,
                n_views=left,
                unreadable=store.unreadable,
            )
            for _ in range(n_workers)
        ]
        from ray.util import ActorPool

        pool = ActorPool(workers)
        engines: set[str] = set()
        n_images = int(work.shape[0])
        with Task(f"features {work.model.backbone} {spec.describe()} on Ray", n_images, unit="img",
                  done=n_images - sum(hi - lo for lo, hi in shards), long=True) as task:  # fmt: skip
            results = pool.map_unordered(
                lambda actor, job: actor.shard.remote(str(work.folder), job[0], job[1], work.batch_size),
                shards,
            )
            for count, used in results:
                engines.add(used)
                task.advance(count)
        return ",".join(sorted(engines)), threads
    except ray.exceptions.RayError as exc:
        raise RunError(
            f"Ray could not extract the features: {str(exc).strip().splitlines()[-1][:200]} "
            "(the shards written so far are kept: the same command resumes)"
        ) from exc
