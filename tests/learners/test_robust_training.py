"""Issue 15's training options and the guard, through the learner on synthetic colours (CPU, seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.learners.test_learners import CPU, N_CLASSES, colour_data, fit, tiny, weights
from unisal.config import ConfigError, build_config
from unisal.guard import GuardVerdict
from unisal.learners import base as learner_base
from unisal.learners import create_learner
from unisal.train import fit as fit_module


def learner(tmp_path: Path, *, train: dict | None = None, guard: str = "off"):
    cfg = tiny("frozen", tmp_path, guard=guard)
    for key, value in (train or {}).items():
        setattr(cfg.train, key, value)
    model = create_learner(cfg, N_CLASSES, CPU)
    data = colour_data(tmp_path)
    model.prepare(data)
    return model, data


def test_every_robust_option_trains_and_logs_its_pseudo_labels(tmp_path: Path) -> None:
    options = {
        "labelled_sampling": "balanced",
        "pseudo_labels": "debias",
        "thresholds": "freematch",
        "ema_teacher": 0.9,
        "cps_labels_per_class": 2,
    }
    model, data = learner(tmp_path, train=options)
    result = fit(model, data)
    assert all(np.isfinite(r["ce"] + r["pl"]) and "pl_a_0" in r and "mask_b" in r for r in result.history)
    metrics, _ = model.evaluate(np.arange(36, 48), data.catalogue.labels[36:48])
    assert metrics["accuracy"] >= 0.9  # colours are easy: the corrections must not break learning
    again, _ = learner(tmp_path / "again", train=options)
    fit(again, data)
    assert torch.equal(weights(model), weights(again))  # seeded: the same weights twice


def record_keyword(monkeypatch: pytest.MonkeyPatch, module: object, name: str, keyword: str) -> list:
    """Wrap ``module.name`` so that every call still runs and its ``keyword`` argument is recorded."""
    seen: list = []
    original = getattr(module, name)

    def spy(*args, **kwargs):
        seen.append(kwargs[keyword])
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return seen


def test_align_uses_the_labels_class_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = record_keyword(monkeypatch, fit_module, "PseudoLabeller", "p_target")
    model, data = learner(tmp_path, train={"pseudo_labels": "align"})
    fit(model, data)
    # 12 labelled colours, 4 of each class, Laplace-smoothed: 5 each, one labeller per network
    assert len(seen) == 2 and all(t.tolist() == [5.0, 5.0, 5.0] for t in seen)


def test_ema_update_moves_teachers_towards_students() -> None:
    student, teacher = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        student.weight.fill_(1.0), teacher.weight.fill_(0.0)
    fit_module.ema_update([teacher], [student], 0.75)  # type: ignore[list-item]
    assert teacher.weight.tolist() == [[0.25, 0.25]]


def test_the_guard_records_its_verdict_and_keeps_both_sets_of_heads(tmp_path: Path) -> None:
    model, data = learner(tmp_path, guard="fallback")
    result = fit(model, data)
    assert result.guard is not None and set(result.guard) == {
        "guard_fallback",
        "guard_reason",
        "guard_kappa",
        "guard_share_ratio",
    }
    assert set(model.alternatives) == {"cotrain", "supervised"}
    chosen = "supervised" if result.guard["guard_fallback"] else "cotrain"
    assert model.nets is model.alternatives[chosen]
    # the supervised heads are exactly those of the supervised learner with the same seeds
    supervised = create_learner(tiny("frozen", tmp_path, mode="supervised"), N_CLASSES, CPU)
    supervised.prepare(data)
    fit(supervised, data)
    mine = torch.cat([p.flatten() for net in model.alternatives["supervised"] for p in net.parameters()])
    assert torch.equal(mine, weights(supervised))


def test_a_degenerate_verdict_falls_back_to_the_supervised_heads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(learner_base, "guard_verdict", lambda *a, **k: GuardVerdict(True, "forced", 0.1, 0.0))
    model, data = learner(tmp_path, guard="fallback")
    result = fit(model, data)
    assert (
        result.guard is not None
        and result.guard["guard_fallback"] == 1
        and result.guard["guard_reason"] == "forced"
    )
    assert model.nets is model.alternatives["supervised"]


def test_warm_start_co_trains_from_the_supervised_heads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts = []
    original = learner_base.fit

    def spy(nets, *args, **kwargs):
        starts.append(torch.cat([p.detach().flatten().clone() for net in nets for p in net.parameters()]))
        out = original(nets, *args, **kwargs)
        starts.append(torch.cat([p.detach().flatten().clone() for net in nets for p in net.parameters()]))
        return out

    monkeypatch.setattr(learner_base, "fit", spy)
    model, data = learner(tmp_path, train={"warm_start": True})
    fit(model, data)
    # supervised fit: start, end; co-training: start (== the supervised end), end
    assert len(starts) == 4 and torch.equal(starts[1], starts[2]) and not torch.equal(starts[0], starts[2])
    assert set(model.alternatives) == {"cotrain", "supervised"}


def test_the_new_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="train.pseudo_labels"):
        build_config("cpu", {"train": {"pseudo_labels": "magic"}})
    with pytest.raises(ConfigError, match="learner.guard"):
        build_config("cpu", {"learner": {"guard": "maybe"}})
    with pytest.raises(ConfigError, match="train.ema_teacher"):
        build_config("cpu", {"train": {"ema_teacher": 1.0}})


@pytest.mark.parametrize(
    ("mode", "guard"), [("supervised", "off"), ("cotrain", "off"), ("cotrain", "fallback")]
)
def test_every_fit_may_fill_its_batch_from_all_training_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, guard: str
) -> None:
    """Supervised heads (their own mode, the guard's, the warm start's) get the batch limit of
    labelled + unlabelled images, as before issue 15: with few labels a batch repeats them."""
    limits = record_keyword(monkeypatch, learner_base, "fit", "batch_limit")
    cfg = tiny("frozen", tmp_path, mode=mode, guard=guard, networks=2)
    model = create_learner(cfg, N_CLASSES, CPU)
    data = colour_data(tmp_path)
    model.prepare(data)
    fit(model, data)
    assert limits and all(
        limit == 36 for limit in limits
    )  # the cpu preset warm-starts: two fits when co-training
    assert len(limits) == (2 if mode == "cotrain" else 1)


def test_after_a_fallback_the_round_reports_the_supervised_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The result's epoch and validation accuracy are the supervised heads', its seconds both fits'."""
    monkeypatch.setattr(learner_base, "guard_verdict", lambda *a, **k: GuardVerdict(True, "forced", 0.1, 0.0))
    model, data = learner(tmp_path, guard="fallback")
    result = fit(model, data)
    assert result.best_val_accuracy is not None and result.seconds > 0
    sup = model.alternatives["supervised"]
    labels = data.catalogue.labels
    acc = float((model._predict_with(sup, np.arange(36, 48)).mean_logits().argmax(1) == labels[36:48]).mean())
    assert result.best_val_accuracy == pytest.approx(acc)
