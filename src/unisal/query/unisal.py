"""UniSAL selection, Disagreement-aware Uncertainty Selector (DUS) + Compact Selector (CS), and its
two ablations: DUS without CS (``dus_random``) and CS without DUS (``cs_only``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unisal.query.base import QueryContext, Selection, Strategy, register_strategy
from unisal.query.scores import compact_selection, disagreement_candidates, mean_entropy

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
    min_networks = 2

    def choose(self, ctx: QueryContext) -> Selection:
        preds = ctx.pool_predictions()
        probs = preds.probs()
        pred_a, pred_b = probs[0].argmax(1), probs[-1].argmax(1)
        embedding = preds.mean_embedding()
        candidates = disagreement_candidates(pred_a, pred_b)
        stats: dict[str, float] = {"n_candidates": len(candidates)}
        score = (pred_a != pred_b).astype(np.float64)
        if len(candidates) >= ctx.budget:
            chosen = candidates[
                compact_selection(embedding[candidates], ctx.budget, ctx.rng, self.kmeans_n_init)
            ]
            reasons = [
                f"{_disagreement(ctx, pred_a[i], pred_b[i])}; nearest a k-means centre" for i in chosen
            ]
            return Selection(chosen, reasons, scores=score, stats=stats)
        remainder = ctx.budget - len(candidates)
        others = np.setdiff1d(np.arange(len(ctx.pool)), candidates)
        entropy = mean_entropy(probs[:, others])
        shortlist = others[np.argsort(-entropy, kind="stable")[: 2 * remainder]]
        filled = shortlist[compact_selection(embedding[shortlist], remainder, ctx.rng, self.kmeans_n_init)]
        reasons = [_disagreement(ctx, pred_a[i], pred_b[i]) for i in candidates]
        reasons += ["fallback: high entropy, nearest a k-means centre" for _ in filled]
        return Selection(np.concatenate([candidates, filled]), reasons, scores=score, stats=stats)


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
