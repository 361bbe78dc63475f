"""Query strategies; importing this package registers the built-in ones."""

from unisal.query import baselines as _baselines  # noqa: F401  (random and the uncertainty scores)
from unisal.query import diversity as _diversity  # noqa: F401  (coreset, badge, kmeans, typiclust)
from unisal.query import unisal as _unisal  # noqa: F401  (unisal and its ablations)
from unisal.query.base import (
    QueryContext,
    Selection,
    Strategy,
    create_strategy,
    register_strategy,
    strategy_class,
    strategy_names,
    strategy_params,
)

__all__ = [
    "QueryContext",
    "Selection",
    "Strategy",
    "create_strategy",
    "register_strategy",
    "strategy_class",
    "strategy_names",
    "strategy_params",
]
