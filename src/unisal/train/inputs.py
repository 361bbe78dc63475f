"""Where networks read their inputs: images (fine-tuning) or cached features (frozen backbone).

A source gives each network its own randomly augmented view of a training batch, and a fixed
list of views of an evaluation batch whose outputs are averaged. The training loop, the loss
functions and model selection are then the same for both learners.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from unisal.data.cache import ImageStore, read_rows
from unisal.data.views import normalise, to_float, weak_view
from unisal.models.features import FeatureStore, prediction_views
from unisal.models.view_means import view_means


class NetworkInputs(Protocol):
    def train_views(
        self, idx: np.ndarray, n_nets: int, generator: torch.Generator, device: torch.device
    ) -> list[torch.Tensor]:
        """One independently augmented input per network for the images ``idx`` (B,)."""
        ...

    def eval_views(self, idx: np.ndarray, device: torch.device) -> list[torch.Tensor]:
        """Fixed views of the images ``idx`` (B,); predictions average the outputs over them."""
        ...


@dataclass
class ImageInputs:
    """Decoded images; training views are weak augmentations, evaluation sees the image as is.

    Attributes:
        store: decoded uint8 images.
        mean, std: the backbone's normalisation.
        crop_scale_min: the random resized crop keeps at least this area fraction.
    """

    store: ImageStore
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_scale_min: float = 0.6

    def train_views(
        self, idx: np.ndarray, n_nets: int, generator: torch.Generator, device: torch.device
    ) -> list[torch.Tensor]:
        images = torch.from_numpy(self.store.get(idx))
        views = []
        for _ in range(n_nets):
            x = to_float(images.to(device, non_blocking=True))
            x = normalise(weak_view(x, generator, self.crop_scale_min), self.mean, self.std)
            views.append(x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x)
        return views

    def eval_views(self, idx: np.ndarray, device: torch.device) -> list[torch.Tensor]:
        x = to_float(torch.from_numpy(self.store.get(idx)).to(device))
        return [normalise(x, self.mean, self.std)]


@dataclass
class FeatureInputs:
    """Cached features; each network gets, per image, a view drawn at random from the cached ones.

    Attributes:
        features: the multi-view feature cache.
        predict_views: how predictions see an image: ``mean``, its features averaged over the cached
            views (one pass); ``tta``, every view, outputs averaged (V passes); ``first``,
            view 0, the image as it is.
    """

    features: FeatureStore
    predict_views: str = "mean"
    _mean: np.ndarray | None = field(default=None, init=False, repr=False)

    def mean_features(self, idx: np.ndarray) -> np.ndarray:
        """float32 (B, F): each image's features averaged over its views (computed once for the
        cache and memory-mapped: ``unisal.models.view_means.view_means``)."""
        if self._mean is None:
            self._mean = view_means(self.features)
        return read_rows(self._mean, self.features.rows[np.asarray(idx)])

    def train_views(
        self, idx: np.ndarray, n_nets: int, generator: torch.Generator, device: torch.device
    ) -> list[torch.Tensor]:
        views = []
        for _ in range(n_nets):
            which = torch.randint(self.features.n_views, (len(idx),), generator=generator).numpy()
            views.append(torch.from_numpy(self.features.get(idx, which)).to(device))
        return views

    def eval_views(self, idx: np.ndarray, device: torch.device) -> list[torch.Tensor]:
        """:func:`~unisal.models.features.prediction_views` of the cached features; the mean of
        every image's views is computed once (reading only view 0 where that is all it needs)."""
        if self.predict_views == "mean":
            return [torch.from_numpy(self.mean_features(idx)).to(device)]
        if self.predict_views == "first":
            first = self.features.get(idx, np.zeros(len(idx), np.int64))[:, None]  # (B, 1, F)
            return prediction_views(torch.from_numpy(first).to(device), "first")
        return prediction_views(torch.from_numpy(self.features.get_all(idx)).to(device), self.predict_views)
