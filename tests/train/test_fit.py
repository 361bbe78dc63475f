"""Co-training and supervised fitting on trivially separable synthetic colours (CPU, seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import synthetic_tile
from tests.train.reference_fit import reference_fit
from unisal.config import ModelConfig, TrainConfig
from unisal.data.cache import ImageStore
from unisal.models.network import build_network
from unisal.train.evaluate import predict
from unisal.train.fit import EMPTY, TrainingSets, fit
from unisal.train.inputs import ImageInputs


def colour_store(n_per_class: int = 24, n_classes: int = 3, size: int = 16) -> tuple[ImageStore, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    images = np.stack([synthetic_tile(int(c), size, rng) for c in labels])
    return ImageStore(images, np.arange(len(labels))), labels


CFG = TrainConfig(epochs=3, steps_per_epoch=6, batch_size=12, lr=0.05, eval_every=1, warmup_fraction=0.3)


def images(store: ImageStore) -> ImageInputs:
    """The images as the networks of ``nets`` see them (their backbone's normalisation)."""
    net = nets(1)[0]
    return ImageInputs(store, net.mean, net.std, CFG.crop_scale_min)


def nets(k: int) -> list:
    return [
        build_network(ModelConfig(backbone="test_resnet", pretrained=False), 3, seed) for seed in range(k)
    ]


def split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = np.arange(len(labels))
    val = idx[idx % 4 == 0]
    lb = idx[(idx % 4 == 1) & (idx % 8 < 4)]
    ulb = np.setdiff1d(idx, np.concatenate([val, lb]))
    return lb, ulb, val


def test_cotraining_learns_selects_on_validation_and_logs_every_loss() -> None:
    store, labels = colour_store()
    lb, ulb, val = split(labels)
    two = nets(2)
    result = fit(
        two,
        images(store),
        TrainingSets(lb, labels[lb], ulb, val, labels[val]),
        CFG,
        torch.device("cpu"),
        seed=0,
    )
    assert result.steps == CFG.epochs * CFG.steps_per_epoch
    assert [int(r["epoch"]) for r in result.history] == [1, 2, 3]
    assert all({"ce", "pl", "con", "confident", "agree", "val_accuracy"} <= set(r) for r in result.history)
    assert result.best_val_accuracy == max(r["val_accuracy"] for r in result.history)
    assert result.history[result.best_epoch - 1]["val_accuracy"] == result.best_val_accuracy
    assert result.best_val_accuracy >= 0.9  # colours are trivially separable


def test_same_seed_same_result_on_cpu() -> None:
    store, labels = colour_store()
    lb, ulb, val = split(labels)
    runs = []
    for _ in range(2):
        two = nets(2)
        fit(
            two,
            images(store),
            TrainingSets(lb, labels[lb], ulb, val, labels[val]),
            CFG,
            torch.device("cpu"),
            seed=5,
        )
        runs.append(torch.cat([p.detach().flatten() for p in two[0].parameters()]))
    assert torch.equal(runs[0], runs[1])


def test_supervised_mode_uses_one_network_and_no_unlabelled_terms() -> None:
    store, labels = colour_store()
    lb, _, val = split(labels)
    one = nets(1)
    result = fit(
        one,
        images(store),
        TrainingSets(lb, labels[lb], EMPTY, val, labels[val]),
        CFG,
        torch.device("cpu"),
        seed=0,
    )
    n_classes = len(set(labels.tolist()))  # plus the labelled batches' class shares (diagnostics)
    assert set(result.history[0]) == {"epoch", "ce", "val_accuracy", *(f"lb_{c}" for c in range(n_classes))}
    assert result.best_val_accuracy is not None and result.best_val_accuracy >= 0.9


def test_without_validation_the_last_epoch_is_kept() -> None:
    store, labels = colour_store()
    lb, ulb, _ = split(labels)
    empty = np.array([], dtype=np.int64)
    result = fit(
        nets(2),
        images(store),
        TrainingSets(lb, labels[lb], ulb, empty, empty),
        CFG,
        torch.device("cpu"),
        seed=0,
    )
    assert result.best_val_accuracy is None and result.best_epoch == CFG.epochs


def test_no_labels_is_refused() -> None:
    store, labels = colour_store()
    empty = np.array([], dtype=np.int64)
    with pytest.raises(ValueError, match="without labelled images"):
        fit(
            nets(1),
            images(store),
            TrainingSets(empty, empty, EMPTY, empty, empty),
            CFG,
            torch.device("cpu"),
            seed=0,
        )


@pytest.mark.parametrize("name", ["cotrain", "supervised1", "supervised2"])
def test_finetune_path_is_unchanged(name: str) -> None:
    """Loss history, model selection and logits equal those of the loop before the learner
    interface (``reference_fit``), run in the same process: exactly, on any CPU and thread count."""
    store, labels = colour_store()
    lb, ulb, val = split(labels)
    k = 1 if name == "supervised1" else 2
    ours, theirs, inputs = nets(k), nets(k), images(store)
    torch.manual_seed(11)  # dropout draws from the global generator in both loops
    result = fit(
        ours,
        inputs,
        TrainingSets(lb, labels[lb], ulb if name == "cotrain" else EMPTY, val, labels[val]),
        CFG,
        torch.device("cpu"),
        seed=5,
    )
    torch.manual_seed(11)
    best_epoch, history = reference_fit(
        theirs, store, lb, labels[lb], ulb if name == "cotrain" else None, val, labels[val], CFG, seed=5
    )
    assert result.best_epoch == best_epoch
    # the reference's columns, equal; the diagnostics logged since are extra columns
    assert [{k: r[k] for k in ref} for r, ref in zip(result.history, history, strict=True)] == history
    logits = [predict(n, inputs, np.arange(6), torch.device("cpu")).logits for n in (ours, theirs)]
    np.testing.assert_array_equal(logits[0], logits[1])
