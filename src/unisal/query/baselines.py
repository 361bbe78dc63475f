"""Baseline strategies that need no model outputs."""

from __future__ import annotations

import numpy as np

from unisal.query.base import Selection, Strategy, register_strategy
from unisal.train.evaluate import Predictions


@register_strategy("random")
class RandomStrategy(Strategy):
    """Uniform sampling without replacement: the baseline every result is set beside."""

    needs_predictions = False

    def select(
        self, preds: Predictions | None, pool_size: int, budget: int, rng: np.random.Generator
    ) -> Selection:
        budget = min(budget, pool_size)
        chosen = np.sort(rng.choice(pool_size, size=budget, replace=False))
        return Selection(chosen, ["random"] * budget, pool_size)
