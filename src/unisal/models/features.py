"""Multi-view features: the views of an image a frozen backbone sees, and the cache that holds them.

The frozen learner trains small heads on these features instead of a backbone on pixels, so a
round takes seconds on a CPU. Each image gets a fixed set of views (the 8 flips and 90-degree
rotations, optionally plus seeded random resized crops); the features of all views are stored
as float16 in one memory-mapped array ``(N_files, V, F)`` (:class:`FeatureStore`), built by
:mod:`unisal.models.feature_cache`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unisal.config import VIEW_SETS, FeatureConfig
from unisal.data.cache import read_rows
from unisal.data.views import apply_affine, normalise, weak_view_params

CROP_SEED = 0  # fixed, so that one cache serves every run seed


@dataclass(frozen=True)
class ViewSpec:
    """Which views of each image the cache holds, in this order: the fixed set, then the crops."""

    views: str = "d8"
    crops: int = 0
    crop_scale_min: float = 0.6

    @classmethod
    def from_config(cls, cfg: FeatureConfig) -> ViewSpec:
        return cls(cfg.views, cfg.crops, cfg.crop_scale_min)

    @property
    def n_fixed(self) -> int:
        return VIEW_SETS[self.views]

    @property
    def n_views(self) -> int:
        return self.n_fixed + self.crops

    def describe(self) -> str:
        crops = f" + {self.crops} crops (>= {self.crop_scale_min:g} of the area)" if self.crops else ""
        return f"{self.views}{crops}"


def fixed_view(images: torch.Tensor, index: int) -> torch.Tensor:
    """View ``index`` (0-7) of (B, 3, H, W): ``index % 4`` quarter turns, mirrored when ``index >= 4``.

    View 0 is the image as it is; 0-3 are the rotations (``rot4``), 0-7 all eight symmetries of
    the square (``d8``).
    """
    turned = torch.rot90(images, index % 4, dims=(2, 3))
    return turned.flip(3) if index >= 4 else turned


def shared_crops(spec: ViewSpec) -> torch.Tensor:
    """Affine matrices (crops, 2, 3) of the cached crops, from a fixed seed: the same for every
    image, so that an image's features, and the predictions on them, depend on the image alone
    (not on its row in the data set), and an exported model can apply them to a new image."""
    generator = torch.Generator().manual_seed(CROP_SEED)
    return weak_view_params(spec.crops, generator, spec.crop_scale_min)


def crop_matrices(n_images: int, spec: ViewSpec) -> torch.Tensor:
    """Affine matrices (N, crops, 2, 3) of every image's cached crops (:func:`shared_crops`)."""
    return shared_crops(spec).unsqueeze(0).expand(n_images, -1, -1, -1)


def view_features(
    images: torch.Tensor,
    spec: ViewSpec,
    crops: torch.Tensor,
    forward: Callable[[torch.Tensor], torch.Tensor],
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> torch.Tensor:
    """(B, V, F) backbone features of every view of a batch (B, 3, S, S) in [0, 1]: what the cache
    stores (as float16) and what an exported model computes. ``crops``: (B, crops, 2, 3)."""
    out = []
    for view in image_views(images, spec, crops):
        features = forward(normalise(view, mean, std))
        if features.ndim != 2:
            raise ValueError(
                f"the backbone returns {tuple(features.shape)} per batch, not pooled (B, F) features"
            )
        out.append(features)
    return torch.stack(out, dim=1)


def prediction_views(features: torch.Tensor, views: str) -> list[torch.Tensor]:
    """The inputs (each (B, F)) whose outputs a prediction averages, from every view's features
    (B, V, F): ``mean``, the features averaged over the views (one pass); ``first``, view 0 (the
    image as it is); ``tta``, every view (V passes). The rounds, ``predict`` and an exported model
    all go through here."""
    if views == "mean":
        return [features.mean(1)]
    if views == "first":
        return [features[:, 0]]
    if views == "tta":
        return list(features.unbind(dim=1))
    raise ValueError(f"unknown prediction views '{views}'")


def image_views(images: torch.Tensor, spec: ViewSpec, crops: torch.Tensor) -> Iterator[torch.Tensor]:
    """The ``spec.n_views`` views of a batch (B, 3, H, W) in [0, 1]; ``crops`` is (B, crops, 2, 3)."""
    for index in range(spec.n_fixed):
        yield fixed_view(images, index)
    for k in range(spec.crops):
        yield apply_affine(images, crops[:, k])


@dataclass
class FeatureStore:
    """Cached backbone features by catalogue index.

    Attributes:
        array: float16 (N_files, V, F), memory-mapped; row ``rows[i]`` belongs to catalogue image i.
        rows: (N,) row of ``array`` for each catalogue index (shared with the ImageStore).
        info: what the cache holds and how it was built (backbone, views, seconds, images/s).
        folder: where the cache lies (derived arrays are kept beside it); None: built in memory.
    """

    array: np.ndarray
    rows: np.ndarray
    info: dict[str, Any]
    folder: Path | None = None

    @property
    def n_views(self) -> int:
        return int(self.array.shape[1])

    @property
    def unreadable(self) -> dict[int, str]:
        """Rows whose images could not be read (features of a black image), with the reason."""
        return {int(row): str(reason) for row, reason in self.info.get("unreadable", [])}

    @property
    def dim(self) -> int:
        return int(self.array.shape[2])

    def get(self, idx: np.ndarray, views: np.ndarray) -> np.ndarray:
        """float32 (B, F): the features of view ``views[b]`` of image ``idx[b]``."""
        return np.asarray(self.array[self.rows[np.asarray(idx)], np.asarray(views)], np.float32)

    def get_all(self, idx: np.ndarray) -> np.ndarray:
        """float32 (B, V, F): every view of the images ``idx`` (B,)."""
        return read_rows(self.array, self.rows[np.asarray(idx)], np.float32)
