"""Strategy contract and registry.

A strategy turns the networks' outputs on the unlabelled pool into a batch of positions to
label. Scoring pieces are pure functions (see ``unisal.query.unisal``); strategies are thin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from unisal.registry import Registry
from unisal.train.evaluate import Predictions


@dataclass
class Selection:
    """Positions into the scored pool, (budget,), and why each was chosen."""

    positions: np.ndarray
    reasons: list[str]
    n_candidates: int  # size of the candidate set the strategy chose from


class Strategy:
    """Base class: ``select(preds, budget, rng)`` returns ``budget`` unique pool positions."""

    name = "base"
    needs_predictions = True  # the learner's outputs on the pool
    needs_features = False  # backbone features too (diversity strategies)
    min_networks = 1  # networks the learner must train (DUS compares two)

    def __init__(self, kmeans_n_init: int = 3, class_names: list[str] | None = None):
        self.kmeans_n_init = kmeans_n_init
        self.class_names = class_names

    def class_name(self, k: int) -> str:
        return self.class_names[k] if self.class_names else str(k)

    def select(
        self, preds: Predictions | None, pool_size: int, budget: int, rng: np.random.Generator
    ) -> Selection:
        raise NotImplementedError


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    return STRATEGIES.register(name)


def strategy_names() -> list[str]:
    return STRATEGIES.names()


def strategy_class(name: str) -> type[Strategy]:
    return STRATEGIES.get(name)


def create_strategy(name: str, **kwargs: Any) -> Strategy:
    return strategy_class(name)(**kwargs)
