"""Two-headed network: backbone features -> class logits and a projected embedding."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unisal.config import ModelConfig
from unisal.models.backbones import create_backbone, normalisation


@dataclass
class NetOutput:
    logits: torch.Tensor  # (B, C)
    embedding: torch.Tensor  # (B, P), L2-normalised projection for the contrastive loss
    features: torch.Tensor  # (B, F), pooled backbone features
    hidden: torch.Tensor | None = None  # (B, H), the classifier's input (gradient embeddings)


class UniSALNet(nn.Module):
    """What the UniSAL losses train: ``forward(x)`` gives class logits and a projected embedding."""

    num_classes: int
    proj_dim: int

    def forward(self, x: torch.Tensor) -> NetOutput:
        raise NotImplementedError


class TwoHeadNet(UniSALNet):
    """Backbone plus a linear classifier and a 2-layer MLP projection head."""

    def __init__(self, backbone: nn.Module, num_classes: int, proj_dim: int = 128):
        super().__init__()
        self.backbone = backbone
        width = int(backbone.num_features)  # type: ignore[arg-type]
        self.num_classes, self.proj_dim = num_classes, proj_dim
        self.classifier = nn.Linear(width, num_classes)
        self.projector = nn.Sequential(
            nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, proj_dim)
        )
        self.mean, self.std = normalisation(backbone)

    def forward(self, x: torch.Tensor) -> NetOutput:
        """x: normalised images (B, 3, H, W)."""
        features = self.backbone(x)
        return NetOutput(
            logits=self.classifier(features),
            embedding=F.normalize(self.projector(features), dim=1),
            features=features,
            hidden=features,
        )


def build_network(cfg: ModelConfig, num_classes: int, seed: int) -> TwoHeadNet:
    """Deterministic for a given seed: heads (and backbone, when not pretrained) are seeded."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = create_backbone(cfg.backbone, cfg.pretrained, cfg.weights, cfg.drop_rate)
        return TwoHeadNet(backbone, num_classes, cfg.proj_dim)
