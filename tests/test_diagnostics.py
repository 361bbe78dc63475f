"""Collapse diagnostics: known answers on hand-made logits."""

from __future__ import annotations

import numpy as np
import pytest

from unisal.diagnostics import class_shares, per_class_recall, round_diagnostics


def one_hot_logits(classes: list[int], n: int = 3) -> np.ndarray:
    return np.eye(n)[classes] * 5.0


def test_shares_and_recall() -> None:
    assert class_shares(np.array([0, 0, 2, 2]), 3).tolist() == [0.5, 0.0, 0.5]
    assert class_shares(np.array([], int), 2).tolist() == [0.0, 0.0]
    recall = per_class_recall(np.array([0, 0, 1, 0]), np.array([0, 1, 1, 0]), 3)
    assert recall[:2].tolist() == [1.0, 0.5] and np.isnan(recall[2])


def test_a_network_that_never_predicts_a_labelled_class_shows_it() -> None:
    """Network B has collapsed onto class 0: its pool shares and labelled recall say so, the heads
    agree on a third of the pool, and the averaged prediction's smallest share is 0."""
    names = ["benign", "adeno", "squamous"]
    pool = np.stack([one_hot_logits([0, 1, 2, 0, 1, 2]), one_hot_logits([0, 0, 0, 0, 0, 0])])
    pool[1] *= 3  # B is very sure: the average follows it
    labelled = np.stack([one_hot_logits([0, 1, 2]), one_hot_logits([0, 0, 0])])
    out = round_diagnostics(pool, labelled, np.array([0, 1, 2]), names)
    assert out["networks"][0]["pool_shares"] == pytest.approx(
        {"benign": 1 / 3, "adeno": 1 / 3, "squamous": 1 / 3}, abs=1e-6
    )
    assert out["networks"][1]["pool_shares"] == {"benign": 1.0, "adeno": 0.0, "squamous": 0.0}
    assert out["networks"][1]["labelled_recall"] == {"benign": 1.0, "adeno": 0.0, "squamous": 0.0}
    assert out["heads_agree"] == pytest.approx(2 / 6, abs=1e-6)
    assert out["pool_share_min"] == 0.0 and out["labelled_recall_min"] == 0.0
    single = round_diagnostics(pool[:1], labelled[:1], np.array([0, 1, 2]), names)
    assert single["heads_agree"] == 1.0 and single["labelled_recall_min"] == 1.0
