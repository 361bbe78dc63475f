"""When to stop labelling: the stabilising-predictions criterion.

Bloodgood & Vijay-Shanker (2009), "A Method for Stopping Active Learning Based on Stabilizing
Predictions and the Need for User-Adjustable Stopping" (CoNLL): draw a *stop set* of unlabelled
items once, predict it after every round, and measure the agreement of successive rounds'
predictions with Cohen's kappa. Once the mean kappa of the last ``window`` comparisons reaches
``threshold`` (their defaults: 3 and 0.99), the model has stopped changing: more labels of this
kind are unlikely to change it much. It needs no labels at all, which is why a lab can use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def stop_set(pool: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` items of ``pool`` (or all of it), ascending: the fixed sample whose predictions
    are compared round to round.

    Args:
        pool: catalogue indices of the unlabelled pool when the run starts, (P,).
        size: how many to draw; 0 gives none (the criterion off).
        rng: seeds the draw.
    """
    pool = np.asarray(pool, np.int64)
    if size <= 0 or len(pool) == 0:
        return np.empty(0, np.int64)
    if size >= len(pool):
        return np.sort(pool)
    return np.sort(rng.choice(pool, size=size, replace=False))


def agreement_kappa(previous: np.ndarray, current: np.ndarray) -> float:
    """Cohen's kappa between two rounds' predicted classes on the stop set, (S,) each.

    Identical predictions give 1.0, also when both predict a single class (where kappa's
    formula is 0 / 0).
    """
    from sklearn.metrics import cohen_kappa_score

    previous, current = np.asarray(previous), np.asarray(current)
    if previous.shape != current.shape or previous.ndim != 1:
        raise ValueError(f"predictions of shapes {previous.shape} and {current.shape} cannot be compared")
    if len(previous) == 0:
        raise ValueError("an empty stop set has no agreement")
    if np.array_equal(previous, current):
        return 1.0
    return float(cohen_kappa_score(previous, current))


def stabilised(kappas: Sequence[float | None], *, window: int = 3, threshold: float = 0.99) -> bool:
    """Whether the mean of the last ``window`` kappas reaches ``threshold`` (None: no comparison
    that round, e.g. the first; a window holding one is not full)."""
    last = list(kappas)[-window:]
    if len(last) < window or any(k is None for k in last):
        return False
    return float(np.mean([float(k) for k in last if k is not None])) >= threshold


def first_stop(kappas: Sequence[float | None], *, window: int = 3, threshold: float = 0.99) -> int | None:
    """The first position of ``kappas`` at which :func:`stabilised` holds, or None."""
    for k in range(len(kappas)):
        if stabilised(kappas[: k + 1], window=window, threshold=threshold):
            return k
    return None


def stop_signal(
    previous: Sequence[str] | None,
    current: Sequence[str],
    earlier: Sequence[float | None],
    *,
    window: int,
    threshold: float,
) -> tuple[float | None, bool]:
    """A round's kappa against the previous round's predictions on the stop set (None without
    them), and whether the criterion holds counting the ``earlier`` rounds' kappas: one step for
    a simulated round and a labelling project's round alike."""
    kappa = None if previous is None else agreement_kappa(np.asarray(previous), np.asarray(current))
    return kappa, stabilised([*earlier, kappa], window=window, threshold=threshold)
