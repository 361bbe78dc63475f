"""Two-headed network contract."""

from __future__ import annotations

import torch

from unisal.config import ModelConfig
from unisal.models.network import build_network


def test_outputs_have_the_promised_shapes_and_unit_embeddings() -> None:
    net = build_network(
        ModelConfig(backbone="test_resnet", pretrained=False, proj_dim=16), num_classes=5, seed=0
    )
    out = net(torch.randn(3, 3, 32, 32))
    assert out.logits.shape == (3, 5)
    assert out.embedding.shape == (3, 16)
    assert out.features.shape == (3, net.backbone.num_features)
    assert torch.allclose(out.embedding.norm(dim=1), torch.ones(3), atol=1e-5)


def test_same_seed_same_weights_other_seed_other_heads() -> None:
    cfg = ModelConfig(backbone="test_resnet", pretrained=False)
    a, b, c = (build_network(cfg, 3, seed) for seed in (1, 1, 2))
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert not torch.equal(a.classifier.weight, c.classifier.weight)


def test_seeding_does_not_disturb_the_global_rng() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_network(ModelConfig(backbone="test_resnet", pretrained=False), 3, seed=7)
    assert torch.equal(torch.rand(3), expected)
