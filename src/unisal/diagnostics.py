"""What explains a collapse of the co-trained networks: per round and per network, small numbers.

A collapse (issue 15) is a model that stops predicting a class it was given labels of. These pure
functions summarise one round from predictions the loop has anyway (the stop set, a seeded
sample of the pool, and the labelled set); ``history/`` holds the per-epoch side (labelled-batch
classes, confident pseudo-labels per network and class, the CPS mask rates).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def class_shares(predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Share of each class among ``predicted`` classes (N,) -> (C,), summing to 1 (zeros if N = 0)."""
    counts = np.bincount(np.asarray(predicted, np.int64), minlength=n_classes).astype(np.float64)
    return counts / max(1, len(predicted))


def per_class_recall(predicted: np.ndarray, truth: np.ndarray, n_classes: int) -> np.ndarray:
    """Recall of each class (C,); NaN for a class ``truth`` does not hold."""
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    out = np.full(n_classes, np.nan)
    for c in range(n_classes):
        held = truth == c
        if held.any():
            out[c] = float(np.mean(predicted[held] == c))
    return out


def round_diagnostics(
    pool_logits: np.ndarray, labelled_logits: np.ndarray, labels: np.ndarray, class_names: list[str]
) -> dict[str, Any]:
    """One round's collapse signals, per network and for their average.

    Args:
        pool_logits: each network's logits on a sample of the unlabelled pool, (K, N, C).
        labelled_logits: each network's logits on the labelled set, (K, L, C).
        labels: the labelled set's classes, (L,).
        class_names: the C class names.

    Returns:
        ``networks``: per network, the class shares of its pool predictions and its recall of
        each class on the labelled set; ``heads_agree``: the share of pool items on which the
        networks' argmax agree (1.0 with one network); ``pool_share_min``: the smallest class
        share of the averaged predictions; ``labelled_recall_min``: the lowest per-class recall
        of the averaged predictions on the labelled set (NaN-free over the classes it holds).
    """
    n_classes = len(class_names)
    pool_pred = pool_logits.argmax(-1)  # (K, N)
    lb_pred = labelled_logits.argmax(-1)  # (K, L)
    networks = []
    for k in range(pool_logits.shape[0]):
        recall = per_class_recall(lb_pred[k], labels, n_classes)
        networks.append(
            {
                "pool_shares": dict(zip(class_names, np.round(class_shares(pool_pred[k], n_classes), 6).tolist(), strict=True)),
                "labelled_recall": {c: None if np.isnan(r) else round(float(r), 6) for c, r in zip(class_names, recall, strict=True)},
            }
        )  # fmt: skip
    mean_pool = class_shares(pool_logits.mean(0).argmax(-1), n_classes)
    mean_recall = per_class_recall(labelled_logits.mean(0).argmax(-1), labels, n_classes)
    agree = float(np.mean(np.all(pool_pred == pool_pred[:1], axis=0))) if pool_pred.shape[1] else 1.0
    return {
        "networks": networks,
        "heads_agree": round(agree, 6),
        "pool_share_min": round(float(mean_pool.min()), 6),
        "labelled_recall_min": round(float(np.nanmin(mean_recall)), 6)
        if np.any(~np.isnan(mean_recall))
        else None,
    }
