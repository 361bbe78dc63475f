"""UniSAL selection: Disagreement-aware Uncertainty Selector (DUS) + Compact Selector (CS)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans

from unisal.query.base import Selection, Strategy, register_strategy
from unisal.train.evaluate import Predictions


def disagreement_candidates(pred_a: np.ndarray, pred_b: np.ndarray) -> np.ndarray:
    """Positions (M,) where two networks' predicted classes (N,) differ, ascending."""
    return np.flatnonzero(np.asarray(pred_a) != np.asarray(pred_b))


def mean_entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy of the networks' averaged probabilities: probs (K, N, C) -> (N,)."""
    p = np.clip(probs.mean(axis=0), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def compact_selection(
    features: np.ndarray, budget: int, rng: np.random.Generator, n_init: int = 3
) -> np.ndarray:
    """k-means with k = ``budget`` on features (M, D); the point nearest each centre.

    Points are matched to centres one-to-one by minimum total distance (Hungarian), which is
    each centre's own nearest point whenever those are distinct, and never picks a point twice.

    Returns:
        ``budget`` unique row positions into ``features`` (all rows when M <= budget).
    """
    m = len(features)
    if budget >= m:
        return np.arange(m)
    seed = int(rng.integers(2**31 - 1))
    km = KMeans(n_clusters=budget, n_init=n_init, random_state=seed).fit(features.astype(np.float64))
    distances = ((km.cluster_centers_[:, None, :] - features[None, :, :].astype(np.float64)) ** 2).sum(-1)
    _, columns = linear_sum_assignment(distances)  # rows are centres 0..budget-1 in order
    return np.asarray(columns)


@register_strategy("unisal")
class UniSALStrategy(Strategy):
    """DUS candidates, then CS; documented fallback when candidates are fewer than the budget.

    Fallback: all candidates are taken; the remainder comes from the non-candidates, shortlisted
    as the ``2 x remainder`` with the highest entropy of the averaged prediction, and reduced to
    the remainder by CS on that shortlist (uncertain, yet not redundant).
    """

    min_networks = 2

    def _disagreement(self, a: int, b: int) -> str:
        return f"networks disagree ({self.class_name(a)} vs {self.class_name(b)})"

    def select(
        self, preds: Predictions | None, pool_size: int, budget: int, rng: np.random.Generator
    ) -> Selection:
        assert preds is not None
        budget = min(budget, pool_size)
        probs = preds.probs()
        pred_a, pred_b = probs[0].argmax(1), probs[-1].argmax(1)
        embedding = preds.mean_embedding()
        candidates = disagreement_candidates(pred_a, pred_b)
        if len(candidates) >= budget:
            chosen = candidates[compact_selection(embedding[candidates], budget, rng, self.kmeans_n_init)]
            reasons = [
                f"{self._disagreement(pred_a[i], pred_b[i])}; nearest a k-means centre" for i in chosen
            ]
            return Selection(chosen, reasons, len(candidates))
        remainder = budget - len(candidates)
        others = np.setdiff1d(np.arange(pool_size), candidates)
        entropy = mean_entropy(probs[:, others])
        shortlist = others[np.argsort(-entropy, kind="stable")[: 2 * remainder]]
        filled = shortlist[compact_selection(embedding[shortlist], remainder, rng, self.kmeans_n_init)]
        reasons = [self._disagreement(pred_a[i], pred_b[i]) for i in candidates]
        reasons += ["fallback: high entropy, nearest a k-means centre" for _ in filled]
        return Selection(np.concatenate([candidates, filled]), reasons, len(candidates))
