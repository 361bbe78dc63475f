"""The learner protocol, run over both learners on synthetic colours (CPU, seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import synthetic_tile
from unisal.config import ConfigError, RunConfig, build_config
from unisal.data.cache import ImageStore
from unisal.data.catalogue import Catalogue
from unisal.data.items import FileItems
from unisal.data.prepare import PreparedData
from unisal.learners import Learner, create_learner, learner_class, learner_names, register_learner
from unisal.learners.frozen import FrozenLearner
from unisal.train import fit as fit_module
from unisal.train.fit import TrainingSets

N_PER_CLASS, N_CLASSES, SIZE = 16, 3, 32
CPU = torch.device("cpu")


def colour_data(tmp_path: Path) -> PreparedData:
    """48 tiles of three colours; indices 0-11 labelled, 12-35 unlabelled pool, 36-47 validation."""
    rng = np.random.default_rng(0)
    labels = np.tile(np.arange(N_CLASSES), N_PER_CLASS)
    images = np.stack([synthetic_tile(int(c), SIZE, rng) for c in labels])
    n = len(labels)
    catalogue = Catalogue(
        items=FileItems(tuple(str(tmp_path / f"{i}.png") for i in range(n))),
        labels=labels,
        groups=np.arange(n),
        class_names=["red", "green", "blue"],
        root=str(tmp_path),
    )
    split = np.asarray(["train"] * 36 + ["val"] * 12)
    return PreparedData(catalogue, ImageStore(images, np.arange(n)), split, [])


def tiny(learner: str, tmp_path: Path, **learner_values: object) -> RunConfig:
    return build_config(
        "cpu" if learner == "frozen" else "cpu-finetune",
        {
            "learner": {"name": learner, **learner_values},
            # Fine-tuning a tiny random ResNet learns colours in a dozen steps; the frozen heads
            # need real (offline ImageNet) features.
            "model": {"backbone": "test_resnet", "pretrained": False} if learner == "finetune" else {},
            "data": {"image_size": SIZE, "cache_dir": str(tmp_path / "cache")},
            # Fine-tuning takes SGD at a high rate to learn colours in 12 steps; the heads AdamW.
            "train": {
                "epochs": 3,
                "steps_per_epoch": 4,
                "batch_size": 12,
                "eval_every": 1,
                "lr": 0.05 if learner == "finetune" else 0.01,
            },
            "features": {"views": "rot4"},
        },
    )


def prepared(learner: str, tmp_path: Path, **learner_values: object) -> tuple[Learner, PreparedData]:
    data = colour_data(tmp_path)
    model = create_learner(tiny(learner, tmp_path, **learner_values), N_CLASSES, CPU)
    model.prepare(data)
    return model, data


def fit(model: Learner, data: PreparedData, seed: int = 0):
    labels = data.catalogue.labels
    idx_lb, idx_ulb, idx_val = np.arange(12), np.arange(12, 36), np.arange(36, 48)
    sets = TrainingSets(idx_lb, labels[idx_lb], idx_ulb, idx_val, labels[idx_val])
    return model.fit(sets, init_seed=seed, seed=seed + 100)


def weights(model: Learner) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for net in model.nets for p in net.parameters()])


def test_both_learners_are_registered() -> None:
    assert {"finetune", "frozen"} <= set(learner_names())
    with pytest.raises(ConfigError, match="unknown learner 'nope'.*finetune"):
        learner_class("nope")
    with pytest.raises(KeyError, match="already registered"):
        register_learner("frozen")(FrozenLearner)


def test_constructors_do_no_io(tmp_path: Path) -> None:
    cfg = tiny("frozen", tmp_path)
    create_learner(cfg, N_CLASSES, CPU)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("name", ["finetune", "frozen"])
def test_learner_contract(name: str, tmp_path: Path) -> None:
    model, data = prepared(name, tmp_path)
    result = fit(model, data)
    assert model.n_networks == 2 and len(model.nets) == 2
    assert {"ce", "pl", "con", "confident", "agree", "val_accuracy"} <= set(result.history[0])
    assert result.best_val_accuracy is not None and result.best_val_accuracy >= 0.9  # colours are easy

    idx = np.array([40, 3, 17])
    preds = model.predict(idx, with_features=True)
    assert preds.logits.shape == (2, 3, N_CLASSES)
    assert preds.embeddings.shape == (2, 3, 128)
    np.testing.assert_allclose(np.linalg.norm(preds.embeddings, axis=2), 1.0, rtol=1e-5)
    width = 1280 if name == "frozen" else model.nets[0].backbone.num_features
    assert preds.features is not None and preds.features.shape == (2, 3, width)
    assert model.predict(idx).features is None

    metrics, matrix = model.evaluate(np.arange(36, 48), data.catalogue.labels[36:48])
    assert matrix.sum() == 12 and metrics["accuracy"] >= 0.9

    restored = create_learner(tiny(name, tmp_path), N_CLASSES, CPU)
    restored.prepare(data)
    restored.load_state_dict(model.state_dict())
    np.testing.assert_allclose(restored.predict(idx).logits, preds.logits, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["finetune", "frozen"])
def test_training_is_deterministic_for_a_seed(name: str, tmp_path: Path) -> None:
    model, data = prepared(name, tmp_path)
    fit(model, data, seed=3)
    first = weights(model)
    fit(model, data, seed=3)
    assert torch.equal(weights(model), first)
    fit(model, data, seed=4)
    assert not torch.equal(weights(model), first)


@pytest.mark.parametrize("name", ["finetune", "frozen"])
def test_both_learners_train_with_the_same_loss_function(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each step of either learner goes through ``step_loss`` (CE + CPS + contrastive) with two outputs."""
    seen: list[tuple[int, int]] = []
    real = fit_module.step_loss

    def spy(outs, y_lb, cfg, weight_pl, **kwargs):  # type: ignore[no-untyped-def]
        seen.append((len(outs), outs[0].logits.shape[0] - len(y_lb)))
        return real(outs, y_lb, cfg, weight_pl, **kwargs)

    monkeypatch.setattr(fit_module, "step_loss", spy)
    model, data = prepared(name, tmp_path)
    fit(model, data)
    cotrain = [(k, n_ulb) for k, n_ulb in seen if n_ulb > 0]
    assert len(cotrain) == 12  # 3 epochs x 4 steps
    assert all(k == 2 for k, _ in cotrain)  # two networks, unlabelled rows present
    # the frozen learner's cpu preset first trains the same two heads on the labels alone (warm start)
    assert len(seen) == (24 if name == "frozen" else 12)


def test_frozen_heads_differ_and_see_independent_views(tmp_path: Path) -> None:
    model, data = prepared("frozen", tmp_path)
    nets = model.new_networks(seed=7)
    assert not torch.equal(nets[0].classifier.weight, nets[1].classifier.weight)
    generator = torch.Generator().manual_seed(0)
    views = model.inputs.train_views(np.arange(36), 2, generator, CPU)
    assert views[0].shape == (36, 1280)
    assert not torch.equal(views[0], views[1])  # per image, each head drew its own cached view


@pytest.mark.parametrize("score", ["mean", "tta", "first"])
def test_frozen_scoring_views(tmp_path: Path, score: str) -> None:
    """mean: heads on the view-averaged features; tta: heads' outputs averaged over views; first: view 0."""
    model, data = prepared("frozen", tmp_path)
    fit(model, data)
    idx = np.array([0, 5])
    features = model.features
    assert features is not None
    every = features.get_all(idx)  # (2, V, F)

    def logits(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return np.stack([net(torch.from_numpy(x)).logits.numpy() for net in model.nets])

    expected = {
        "mean": logits(every.mean(axis=1)),
        "tta": np.mean([logits(every[:, v]) for v in range(features.n_views)], axis=0),
        "first": logits(every[:, 0]),
    }[score]
    model.cfg.features.predict_views = score
    model.prepare(data)  # the cache is reused; only the scoring changes
    np.testing.assert_allclose(model.predict(idx).logits, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["finetune", "frozen"])
def test_supervised_mode_with_one_or_two_networks(name: str, tmp_path: Path) -> None:
    for networks in (1, 2):
        model, data = prepared(name, tmp_path, mode="supervised", networks=networks)
        result = fit(model, data)
        assert len(model.nets) == networks
        logged = {k for k in result.history[0] if not k.startswith("lb_")}  # lb_<c>: the batches' classes
        assert logged == {"epoch", "ce", "val_accuracy"}  # no unlabelled terms
        assert model.predict(np.arange(3)).logits.shape == (networks, 3, N_CLASSES)


def test_frozen_learner_needs_pretrained_weights(tmp_path: Path) -> None:
    cfg = tiny("frozen", tmp_path)
    cfg.model.pretrained = False
    with pytest.raises(ConfigError, match="needs pretrained weights"):
        create_learner(cfg, N_CLASSES, CPU)


def test_a_checkpoint_of_another_learner_is_refused(tmp_path: Path) -> None:
    model, data = prepared("frozen", tmp_path)
    fit(model, data)
    state = model.state_dict() | {"learner": "finetune"}
    with pytest.raises(ConfigError, match="written by the 'finetune' learner"):
        model.load_state_dict(state)


def test_predicting_before_training_is_an_error(tmp_path: Path) -> None:
    model = create_learner(tiny("frozen", tmp_path), N_CLASSES, CPU)
    with pytest.raises(RuntimeError, match="prepare"):
        _ = model.inputs
    model.prepare(colour_data(tmp_path))
    with pytest.raises(RuntimeError, match="no trained networks"):
        model.predict(np.arange(2))
