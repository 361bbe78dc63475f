"""How good is the model, without a test set: cross-validation over the labels, with an interval.

What a lab sees each round (``unisal project status``, the app) and what a simulation can report
beside its test accuracy (``query.cv_folds``): the labelled images are split into folds that never
separate a group, each fold is predicted by a model trained on the others, and the out-of-fold
predictions give an accuracy with a Wilson 95 % interval. Labels chosen by active learning are
harder than the pool at large, so on them the estimate leans low (measured in
docs/robust-default.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def grouped_folds(
    labels: np.ndarray, groups: np.ndarray, k: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train positions, held-out positions) of up to ``k`` folds that never split a group."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len(np.unique(groups))
    k = min(k, n_groups, int(np.bincount(labels).max()))  # no more folds than the largest class has items
    if k < 2:
        return []
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(a, b) for a, b in splitter.split(np.zeros(len(labels)), labels, groups)]


def fold_metrics(learner: Any, idx: np.ndarray, y_true: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 on a held-out fold (N,); macro-F1 over the classes the fold holds,
    since a small fold rarely holds every class and an absent class would count as 0."""
    from sklearn.metrics import f1_score

    y_pred = learner.predict(idx).mean_logits().argmax(1)
    present = sorted(set(np.asarray(y_true).tolist()))
    return {
        "correct": float(np.sum(y_pred == y_true)),
        "n": float(len(y_true)),
        "accuracy": float(np.mean(y_pred == y_true)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
    }


def wilson_interval(correct: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``correct / n`` (95 % for z = 1.96); (0, 1) for n = 0.

    For cross-validated accuracy: the out-of-fold predictions of every labelled image, pooled.
    Labels chosen by active learning are harder than the pool at large, so the estimate leans low.
    """
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def pooled_estimate(fold_scores: list[dict[str, float]]) -> tuple[float, float, float]:
    """Accuracy of the out-of-fold predictions of every fold together (``correct`` and ``n`` of
    :func:`fold_metrics`) and its Wilson 95 % interval: (accuracy, low, high). The mean over folds
    would weigh a small fold like a large one."""
    correct, n = sum(s["correct"] for s in fold_scores), sum(s["n"] for s in fold_scores)
    low, high = wilson_interval(correct, n)
    return correct / n, low, high
