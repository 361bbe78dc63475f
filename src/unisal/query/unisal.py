"""UniSAL selection, Disagreement-aware Uncertainty Selector (DUS) + Compact Selector (CS), and its
two ablations: DUS without CS (``dus_random``) and CS without DUS (``cs_only``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unisal.query.base import QueryContext, Selection, Strategy, register_strategy
from unisal.query.diversity import feature_space
from unisal.query.scores import compact_selection, disagreement_candidates, k_center_greedy, mean_entropy

# Re-exported: the pure pieces of UniSAL's selection.
__all__ = ["compact_selection", "disagreement_candidates", "mean_entropy"]


def _disagreement(ctx: QueryContext, a: int, b: int) -> str:
    return f"networks disagree ({ctx.class_name(a)} vs {ctx.class_name(b)})"


@register_strategy("unisal")
@dataclass
class UniSALStrategy(Strategy):
    """DUS candidates, then CS; documented fallback when candidates are fewer than the budget.

    Fallback: all candidates are taken; the remainder comes from the non-candidates, shortlisted
    as the ``2 x remainder`` with the highest entropy of the averaged prediction, and reduced to
    the remainder by CS on that shortlist (uncertain, yet not redundant).
    """

    kmeans_n_init: int = 3
    # share of the budget spent exploring (query.explore): k-center greedy in the backbone's
    # features, far from every label, so that a class the labels lack can be found; disagreement
    # cannot find it, since the networks never predict it (docs/robust-default.md)
    explore: float = 0.0
    min_networks = 2

    def choose(self, ctx: QueryContext) -> Selection:
        preds = ctx.pool_predictions()
        probs = preds.probs()
        pred_a, pred_b = probs[0].argmax(1), probs[-1].argmax(1)
        score = (pred_a != pred_b).astype(np.float64)
        n_explore = exploration_share(self.explore, ctx.budget)
        explored = np.empty(0, np.int64)
        if n_explore:
            pool = feature_space(preds, "features")
            labelled = (
                feature_space(ctx.labelled_predictions(), "features") if len(ctx.labelled) else pool[:0]
            )
            explored = k_center_greedy(pool, labelled, n_explore, ctx.rng)[0].astype(np.int64)
        rest = np.setdiff1d(np.arange(len(ctx.pool)), explored)
        chosen, reasons, n_candidates = self._dus_cs(
            ctx, probs, (pred_a, pred_b), preds.mean_embedding(), rest, ctx.budget - n_explore
        )
        reasons = ["exploration: k-center greedy in the backbone features, far from every label"] * len(
            explored
        ) + reasons
        stats: dict[str, float] = {"n_candidates": n_candidates}
        if n_explore:
            stats["n_explored"] = len(explored)
        return Selection(np.concatenate([explored, chosen]), reasons, scores=score, stats=stats)

    def _dus_cs(
        self,
        ctx: QueryContext,
        probs: np.ndarray,
        preds: tuple[np.ndarray, np.ndarray],
        embedding: np.ndarray,
        positions: np.ndarray,
        budget: int,
    ) -> tuple[np.ndarray, list[str], int]:
        """DUS then CS among pool ``positions`` (M,) for ``budget`` picks: positions, reasons, and
        the number of DUS candidates. ``probs`` (K, N, C) and the first and last networks'
        predicted classes ``preds`` (N,) each are over the whole pool."""
        pred_a, pred_b = preds
        candidates = positions[disagreement_candidates(pred_a[positions], pred_b[positions])]
        if len(candidates) >= budget:
            chosen = candidates[compact_selection(embedding[candidates], budget, ctx.rng, self.kmeans_n_init)]
            reasons = [
                f"{_disagreement(ctx, pred_a[i], pred_b[i])}; nearest a k-means centre" for i in chosen
            ]
            return chosen, reasons, len(candidates)
        remainder = budget - len(candidates)
        others = np.setdiff1d(positions, candidates)
        entropy = mean_entropy(probs[:, others])
        shortlist = others[np.argsort(-entropy, kind="stable")[: 2 * remainder]]
        filled = shortlist[compact_selection(embedding[shortlist], remainder, ctx.rng, self.kmeans_n_init)]
        reasons = [_disagreement(ctx, pred_a[i], pred_b[i]) for i in candidates]
        reasons += ["fallback: high entropy, nearest a k-means centre" for _ in filled]
        return np.concatenate([candidates, filled]), reasons, len(candidates)


def exploration_share(explore: float, budget: int) -> int:
    """Picks of a round spent exploring: ``round(explore * budget)``, at least one when exploring
    at all, and never the whole budget (DUS + CS keep at least one)."""
    if explore <= 0 or budget < 2:
        return 0
    return int(min(budget - 1, max(1, round(explore * budget))))


@register_strategy("dus_random")
@dataclass
class DUSRandomStrategy(Strategy):
    """Ablation without CS: DUS candidates, then a uniform sample of them. With fewer candidates
    than the budget, all of them plus a uniform sample of the rest."""

    min_networks = 2

    def choose(self, ctx: QueryContext) -> Selection:
        probs = ctx.pool_predictions().probs()
        pred_a, pred_b = probs[0].argmax(1), probs[-1].argmax(1)
        candidates = disagreement_candidates(pred_a, pred_b)
        stats: dict[str, float] = {"n_candidates": len(candidates)}
        if len(candidates) >= ctx.budget:
            chosen = np.sort(ctx.rng.choice(candidates, size=ctx.budget, replace=False))
            reasons = [f"{_disagreement(ctx, pred_a[i], pred_b[i])}; drawn at random" for i in chosen]
            return Selection(chosen, reasons, stats=stats)
        others = np.setdiff1d(np.arange(len(ctx.pool)), candidates)
        filled = np.sort(ctx.rng.choice(others, size=ctx.budget - len(candidates), replace=False))
        reasons = [_disagreement(ctx, pred_a[i], pred_b[i]) for i in candidates]
        reasons += ["fallback: drawn at random"] * len(filled)
        return Selection(np.concatenate([candidates, filled]), reasons, stats=stats)


@register_strategy("cs_only")
@dataclass
class CSOnlyStrategy(Strategy):
    """Ablation without DUS: CS (k-means with k = budget on the networks' averaged contrastive
    embedding) over the whole unlabelled pool."""

    kmeans_n_init: int = 3

    def choose(self, ctx: QueryContext) -> Selection:
        embedding = ctx.pool_predictions().mean_embedding()
        chosen = compact_selection(embedding, ctx.budget, ctx.rng, self.kmeans_n_init)
        return Selection(chosen, ["nearest a k-means centre of the whole pool"] * len(chosen))
