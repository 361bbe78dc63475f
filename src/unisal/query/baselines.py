"""Baseline strategies: random sampling, and the classic uncertainty scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unisal.query import scores
from unisal.query.base import QueryContext, Selection, Strategy, register_strategy
from unisal.train.evaluate import Predictions


@register_strategy("random")
@dataclass
class RandomStrategy(Strategy):
    """Uniform sampling without replacement: the baseline every result is set beside."""

    needs_learner = False

    def choose(self, ctx: QueryContext) -> Selection:
        chosen = np.sort(ctx.rng.choice(len(ctx.pool), size=ctx.budget, replace=False))
        return Selection(chosen, ["random"] * ctx.budget)


class _TopScore(Strategy):
    """Take the ``budget`` pool items with the highest score of the networks' mean probabilities,
    scored batch by batch."""

    label = "score"
    streams = True

    def batch_score(self, preds: Predictions) -> np.ndarray:
        """(B,) higher = more wanted, from predictions (K, B, ·) on a batch of the pool."""
        raise NotImplementedError

    def outputs(self) -> tuple[str, ...]:
        return ("logits",)

    def score(self, ctx: QueryContext) -> np.ndarray:
        """(N,) higher = more wanted."""
        return ctx.pool_scores(self.batch_score)

    def choose(self, ctx: QueryContext) -> Selection:
        values = self.score(ctx)
        chosen = scores.top_k(values, ctx.budget)
        reasons = [f"{self.label} {values[i]:.4f} (rank {r + 1})" for r, i in enumerate(chosen)]
        return Selection(chosen, reasons, scores=values)


def _mean_probs(preds: Predictions) -> np.ndarray:
    return preds.probs().mean(axis=0)


@register_strategy("entropy")
@dataclass
class EntropyStrategy(_TopScore):
    """Highest predictive entropy of the averaged prediction."""

    label = "entropy"

    def batch_score(self, preds: Predictions) -> np.ndarray:
        return scores.entropy(_mean_probs(preds))


@register_strategy("margin")
@dataclass
class MarginStrategy(_TopScore):
    """Smallest gap between the two most likely classes (score = 1 - margin)."""

    label = "1 - margin"

    def batch_score(self, preds: Predictions) -> np.ndarray:
        return 1.0 - scores.margin(_mean_probs(preds))


@register_strategy("least_confidence")
@dataclass
class LeastConfidenceStrategy(_TopScore):
    """Lowest top-class probability (score = 1 - max p)."""

    label = "1 - max p"

    def batch_score(self, preds: Predictions) -> np.ndarray:
        return scores.least_confidence(_mean_probs(preds))


@register_strategy("bald")
@dataclass
class BALDStrategy(_TopScore):
    """BALD (Houlsby et al. 2011; Gal et al. 2017): mutual information between the prediction and
    the weights, estimated by ``mc_samples`` MC-dropout passes of every network (the networks'
    different initialisations are further posterior samples)."""

    mc_samples: int = 20
    needs_dropout = True
    label = "BALD mutual information"

    def outputs(self) -> tuple[str, ...]:
        return ("mc_dropout",)

    def score(self, ctx: QueryContext) -> np.ndarray:
        return ctx.mc_dropout_scores(self.mc_samples, scores.bald)
