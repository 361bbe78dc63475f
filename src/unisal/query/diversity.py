"""Diversity and hybrid strategies: core-set, BADGE, k-means representatives and TypiClust.

Feature spaces (``space``): ``features``, the backbone's pooled features (fixed when the backbone
is frozen); ``hidden``, the classifier's input of the trained networks (concatenated over
networks); ``embedding``, the networks' averaged 128-d contrastive projection. All are
L2-normalised per item, so that distances compare directions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unisal.config import ConfigError
from unisal.query import scores
from unisal.query.base import QueryContext, Selection, Strategy, register_strategy
from unisal.train.evaluate import Predictions

SPACES = ("features", "hidden", "embedding")
SPACE_OUTPUT = {"features": "features", "hidden": "hidden", "embedding": "embeddings"}  # Predictions field


def feature_space(preds: Predictions, space: str) -> np.ndarray:
    """(N, D) L2-normalised representation ``space`` of the predicted items."""
    if space == "embedding":
        x = preds.mean_embedding()
    elif space == "hidden":
        x = np.concatenate(list(preds.output("hidden")), axis=1)
    else:
        x = preds.output("features").mean(axis=0)
    return scores.l2_normalise(x)


class _InSpace(Strategy):
    """A strategy in one feature space of every pool item (held in memory: its method compares
    every item with every centre or pick), asked of the learner alone."""

    space: str

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise ConfigError(f"strategy '{self.name}' parameter 'space' must be one of {list(SPACES)}")

    def outputs(self) -> tuple[str, ...]:
        return (SPACE_OUTPUT[self.space],)

    def pool_space(self, ctx: QueryContext) -> np.ndarray:
        """(N, D) float32 the pool in ``space`` (row by row: only this array is held)."""
        return ctx.pool_rows(lambda batch: feature_space(batch, self.space), self.outputs())

    def labelled_space(self, ctx: QueryContext, pool: np.ndarray) -> np.ndarray:
        """(L, D) the labelled images in ``space`` (none: (0, D))."""
        return (
            feature_space(ctx.labelled_predictions(self.outputs()), self.space)
            if len(ctx.labelled)
            else pool[:0]
        )


@register_strategy("coreset")
@dataclass
class CoresetStrategy(_InSpace):
    """Core-set (Sener & Savarese 2018): k-center greedy in the trained networks' penultimate
    space; each pick is the pool item farthest from everything labelled or picked."""

    space: str = "hidden"

    def choose(self, ctx: QueryContext) -> Selection:
        pool = self.pool_space(ctx)
        labelled = self.labelled_space(ctx, pool)
        chosen, distance = scores.k_center_greedy(pool, labelled, ctx.budget, ctx.rng)
        reasons = [f"k-center greedy pick {r + 1}: far from the labelled set" for r in range(len(chosen))]
        return Selection(
            chosen, reasons, scores=distance, stats={"max_distance": round(float(distance.max()), 4)}
        )


@register_strategy("badge")
@dataclass
class BADGEStrategy(Strategy):
    """BADGE (Ash et al. 2020): k-means++ seeding on gradient embeddings of the last layer at the
    predicted label, which are large where the model is unsure and spread where items differ.
    Network 0's classifier gives the embedding."""

    def outputs(self) -> tuple[str, ...]:
        return ("hidden",)

    def choose(self, ctx: QueryContext) -> Selection:
        # the (N, C * H) gradient embeddings are never built: distances come from their factors,
        # network 0's logits and classifier input, gathered batch by batch
        both = ctx.pool_rows(
            lambda b: np.concatenate([b.logits[0], b.output("hidden")[0]], axis=1), self.outputs()
        )
        logits, hidden = both[:, : ctx.n_classes].copy(), np.ascontiguousarray(both[:, ctx.n_classes :])
        del both  # the contiguous copy of the classifier inputs is what k-means++ reads each step
        a, h = scores.gradient_factors(logits, hidden)
        chosen = scores.kmeans_pp_seeds_outer(a, h, ctx.budget, ctx.rng)
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(h, axis=1)
        reasons = [
            f"k-means++ seed {r + 1} on gradient embeddings (norm {norms[i]:.3f})"
            for r, i in enumerate(chosen)
        ]
        return Selection(chosen, reasons, scores=norms)


@register_strategy("kmeans")
@dataclass
class KMeansStrategy(_InSpace):
    """Representative sampling: k-means with k = budget on the pool's backbone features, and the
    item nearest each centre (no model uncertainty)."""

    space: str = "features"
    kmeans_n_init: int = 3

    def choose(self, ctx: QueryContext) -> Selection:
        x = self.pool_space(ctx)
        chosen = scores.compact_selection(x, ctx.budget, ctx.rng, self.kmeans_n_init, np.float32)
        return Selection(chosen, [f"nearest a k-means centre ({self.space})"] * len(chosen))


@register_strategy("typiclust")
@dataclass
class TypiClustStrategy(_InSpace):
    """TypiClust (Hacohen et al. 2022): the most typical item of the least-covered large cluster,
    clusters from k-means on backbone features of pool and labelled images."""

    space: str = "features"
    max_clusters: int = 500
    min_cluster_size: int = 5
    knn: int = 20

    def choose(self, ctx: QueryContext) -> Selection:
        pool = self.pool_space(ctx)
        labelled = self.labelled_space(ctx, pool)
        chosen, clusters = scores.typiclust_select(
            pool,
            labelled,
            ctx.budget,
            ctx.rng,
            max_clusters=self.max_clusters,
            min_cluster_size=self.min_cluster_size,
            knn=self.knn,
        )
        reasons = [f"most typical item of a least-covered cluster ({c})" for c in clusters]
        return Selection(chosen, reasons)
