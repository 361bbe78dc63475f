"""Query strategies; importing this package registers the built-in ones."""

from unisal.query import baselines as _baselines  # noqa: F401  (registers random)
from unisal.query import unisal as _unisal  # noqa: F401  (registers unisal)
from unisal.query.base import (
    Selection,
    Strategy,
    create_strategy,
    register_strategy,
    strategy_class,
    strategy_names,
)

__all__ = [
    "Selection",
    "Strategy",
    "create_strategy",
    "register_strategy",
    "strategy_class",
    "strategy_names",
]
