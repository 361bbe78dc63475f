"""UniSAL selection, Disagreement-aware Uncertainty Selector (DUS) + Compact Selector (CS), and its
two ablations: DUS without CS (``dus_random``) and CS without DUS (``cs_only``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unisal.query.base import QueryContext, Selection, Strategy, register_strategy
from unisal.query.diversity import feature_space
from unisal.query.scores import (
    compact_selection,
    disagreement_candidates,
    k_center_greedy,
    mean_entropy,
    random_projection,
)

# From this many pool items exploration compares the backbone features projected to EXPLORE_DIM
# (a seeded random projection): the pool's (N, F) float32 features are 5 GB at 10^6 x 1,280, the
# projection 0.5 GB. Smaller pools explore in the features themselves, as before.
EXPLORE_PROJECT_FROM = 100_000
EXPLORE_DIM = 128

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

    streams = True  # but for exploration, which holds the pool's backbone features

    def outputs(self) -> tuple[str, ...]:
        return ("embeddings", "features") if self.explore > 0 else ("embeddings",)

    def choose(self, ctx: QueryContext) -> Selection:
        n_explore = exploration_share(self.explore, ctx.budget)
        # the fallback's shortlist is at most twice the DUS budget, from outside the explored
        project = EXPLORE_DIM if len(ctx.pool) >= EXPLORE_PROJECT_FROM else None
        scan = scan_pool(
            ctx, keep=2 * (ctx.budget - n_explore) + n_explore, features=n_explore > 0, project=project
        )
        explored = np.empty(0, np.int64)
        if n_explore:
            assert scan.features is not None
            pool = scan.features
            labelled = (
                feature_space(ctx.labelled_predictions(("features",)), "features")
                if len(ctx.labelled)
                else pool[:0]
            )
            if project and len(labelled):
                labelled = random_projection(labelled, project)
            explored = k_center_greedy(pool, labelled, n_explore, ctx.rng)[0].astype(np.int64)
        chosen, reasons, n_candidates = self._dus_cs(ctx, scan, explored, ctx.budget - n_explore)
        reasons = ["exploration: k-center greedy in the backbone features, far from every label"] * len(
            explored
        ) + reasons
        stats: dict[str, float] = {"n_candidates": n_candidates}
        if n_explore:
            stats["n_explored"] = len(explored)
        score = (scan.pred_a != scan.pred_b).astype(np.float64)
        return Selection(np.concatenate([explored, chosen]), reasons, scores=score, stats=stats)

    def _dus_cs(
        self, ctx: QueryContext, scan: PoolScan, explored: np.ndarray, budget: int
    ) -> tuple[np.ndarray, list[str], int]:
        """DUS then CS among the pool less ``explored`` for ``budget`` picks: positions, reasons,
        and the number of DUS candidates."""
        pred_a, pred_b = scan.pred_a, scan.pred_b
        keep = ~np.isin(scan.candidates, explored)
        candidates, embedding = scan.candidates[keep], scan.candidate_embeddings[keep]
        if len(candidates) >= budget:
            chosen = candidates[compact_selection(embedding, budget, ctx.rng, self.kmeans_n_init)]
            reasons = [
                f"{_disagreement(ctx, pred_a[i], pred_b[i])}; nearest a k-means centre" for i in chosen
            ]
            return chosen, reasons, len(candidates)
        remainder = budget - len(candidates)
        keep = ~np.isin(scan.shortlist, explored)
        shortlist, short_embedding = (
            scan.shortlist[keep][: 2 * remainder],
            scan.shortlist_embeddings[keep][: 2 * remainder],
        )
        filled = shortlist[compact_selection(short_embedding, remainder, ctx.rng, self.kmeans_n_init)]
        reasons = [_disagreement(ctx, pred_a[i], pred_b[i]) for i in candidates]
        reasons += ["fallback: high entropy, nearest a k-means centre" for _ in filled]
        return np.concatenate([candidates, filled]), reasons, len(candidates)


@dataclass
class PoolScan:
    """What DUS + CS keep of the pool's predictions, gathered batch by batch (:func:`scan_pool`).

    Attributes:
        pred_a, pred_b: (N,) the first and last networks' predicted classes.
        candidates: (M,) ascending positions where they disagree; ``candidate_embeddings`` (M, P)
            their averaged embeddings (CS clusters them).
        shortlist: (S,) positions of the other items of highest entropy of the averaged
            prediction, highest first (ties: the lower position), and ``shortlist_embeddings``
            (S, P): the fallback when candidates are too few.
        features: (N, F) L2-normalised backbone features (exploration only; (N, D) projected
            where asked), else None.
    """

    pred_a: np.ndarray
    pred_b: np.ndarray
    candidates: np.ndarray
    candidate_embeddings: np.ndarray
    shortlist: np.ndarray
    shortlist_embeddings: np.ndarray
    features: np.ndarray | None


def scan_pool(ctx: QueryContext, *, keep: int, features: bool, project: int | None = None) -> PoolScan:
    """One pass over the pool's predictions, keeping what DUS + CS need: the predicted classes
    (N,), the disagreeing items' embeddings, the ``keep`` highest-entropy others' embeddings,
    and the pool's backbone features when ``features`` (randomly projected to ``project``
    dimensions where given: :func:`~unisal.query.scores.random_projection`). Memory: the batch,
    the candidates and O(N) numbers, not the pool's (K, N, ·) outputs."""
    n = len(ctx.pool)
    pred_a, pred_b = np.empty(n, np.int64), np.empty(n, np.int64)
    cand: list[np.ndarray] = []
    cand_emb: list[np.ndarray] = []
    short = np.empty(0, np.int64)
    short_entropy = np.empty(0, np.float64)
    short_emb: np.ndarray | None = None
    feats: np.ndarray | None = None
    outputs = ("embeddings", "features") if features else ("embeddings",)
    for start, batch in ctx.pool_batches(outputs):
        probs = batch.probs()
        a, b = probs[0].argmax(1), probs[-1].argmax(1)
        stop = start + len(a)
        pred_a[start:stop], pred_b[start:stop] = a, b
        embedding = batch.mean_embedding()
        where = disagreement_candidates(a, b)
        cand.append(start + where)
        cand_emb.append(embedding[where])
        others = np.setdiff1d(np.arange(len(a)), where)
        entropy = mean_entropy(probs[:, others])
        merged = np.concatenate([short, start + others])
        merged_entropy = np.concatenate([short_entropy, entropy])
        merged_emb = (
            embedding[others] if short_emb is None else np.concatenate([short_emb, embedding[others]])
        )
        order = np.lexsort((merged, -merged_entropy))[:keep]  # entropy high to low, then position
        short, short_entropy, short_emb = merged[order], merged_entropy[order], merged_emb[order]
        if features:
            x = feature_space(batch, "features")
            if project:
                x = random_projection(x, project)
            if feats is None:
                feats = np.empty((n, x.shape[1]), x.dtype)
            feats[start:stop] = x
    width = int(ctx._learner().nets[0].proj_dim) if short_emb is None else short_emb.shape[1]
    empty = np.zeros((0, width), np.float32)
    return PoolScan(
        pred_a,
        pred_b,
        np.concatenate(cand) if cand else np.empty(0, np.int64),
        np.concatenate(cand_emb) if cand_emb else empty,
        short,
        empty if short_emb is None else short_emb,
        feats,
    )


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

    streams = True

    def outputs(self) -> tuple[str, ...]:
        return ("logits",)

    def choose(self, ctx: QueryContext) -> Selection:
        pred_a, pred_b = np.empty(len(ctx.pool), np.int64), np.empty(len(ctx.pool), np.int64)
        for start, batch in ctx.pool_batches():
            probs = batch.probs()
            pred_a[start : start + probs.shape[1]] = probs[0].argmax(1)
            pred_b[start : start + probs.shape[1]] = probs[-1].argmax(1)
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

    def outputs(self) -> tuple[str, ...]:
        return ("embeddings",)

    def choose(self, ctx: QueryContext) -> Selection:
        embedding = ctx.pool_rows(lambda batch: batch.mean_embedding(), self.outputs())
        chosen = compact_selection(embedding, ctx.budget, ctx.rng, self.kmeans_n_init)
        return Selection(chosen, ["nearest a k-means centre of the whole pool"] * len(chosen))
