"""Trainable heads on frozen backbone features: the frozen learner's networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unisal.models.network import NetOutput, UniSALNet


class FeatureHeadNet(UniSALNet):
    """An MLP on cached features with a classifier and a 128-d projection, like ``TwoHeadNet``.

    ``features -> Linear -> LayerNorm -> GELU -> dropout -> hidden``; the classifier and the
    2-layer projection both read ``hidden``, so the contrastive loss shapes what the classifier
    sees, as it shapes the backbone when fine-tuning.
    """

    def __init__(
        self, in_features: int, num_classes: int, hidden: int = 256, proj_dim: int = 128, dropout: float = 0.0
    ):
        super().__init__()
        self.num_classes, self.proj_dim = num_classes, proj_dim
        self.trunk = nn.Sequential(
            nn.Linear(in_features, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout)
        )
        self.classifier = nn.Linear(hidden, num_classes)
        self.projector = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, proj_dim)
        )

    def forward(self, x: torch.Tensor) -> NetOutput:
        """x: backbone features (B, F)."""
        hidden = self.trunk(x)
        return NetOutput(
            logits=self.classifier(hidden),
            embedding=F.normalize(self.projector(hidden), dim=1),
            features=x,
            hidden=hidden,
        )


def build_head(
    in_features: int, num_classes: int, *, hidden: int, proj_dim: int, dropout: float, seed: int
) -> FeatureHeadNet:
    """Deterministic for a given seed; the two heads of a pair get different seeds."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return FeatureHeadNet(in_features, num_classes, hidden, proj_dim, dropout)
