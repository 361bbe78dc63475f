"""Strategy contract, the query context, and the registry.

A strategy sees one :class:`QueryContext` per round: the unlabelled pool and the labelled set
as absolute catalogue indices, the labels, the budget, a seeded generator and, lazily, what the
learner can say about those images (predictions, embeddings, backbone features, MC-dropout
passes, gradient embeddings). It returns a :class:`Selection`: ``budget`` unique positions into
the pool, a reason for each, per-item scores where it has them, and per-round statistics that
the loop writes to ``rounds.csv``.

Strategies are dataclasses whose fields are their hyper-parameters (set through
``query.params``); the scoring itself lives in pure functions (:mod:`unisal.query.scores`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from unisal.config import ConfigError, RunConfig, check_field
from unisal.errors import RunError
from unisal.registry import Registry
from unisal.train.evaluate import OUTPUTS, Predictions

ALL_OUTPUTS = OUTPUTS  # logits, embeddings, features, hidden

if TYPE_CHECKING:
    from unisal.learners.base import Learner


@dataclass
class Selection:
    """What a strategy chose in one round.

    Attributes:
        positions: (budget,) unique positions into ``QueryContext.pool``.
        reasons: one line per chosen item: why it was picked.
        scores: (N,) per-pool-item score, higher = more wanted, where the strategy has one.
        stats: per-round numbers (e.g. ``n_candidates``), written to ``rounds.csv``.
    """

    positions: np.ndarray
    reasons: list[str]
    scores: np.ndarray | None = None
    stats: dict[str, float] = field(default_factory=dict)


@dataclass
class QueryContext:
    """Everything a strategy may ask about one round; model outputs are computed on first use.

    Attributes:
        pool: (N,) absolute catalogue indices of the unlabelled images that may be chosen.
        labelled: (L,) absolute indices of the labelled images; ``labels`` (L,) their classes.
        budget: how many images to choose.
        rng: the round's seeded generator; strategies draw every random number from it.
        class_names: the C class names.
        learner: the trained learner (None for strategies that need no model).
    """

    pool: np.ndarray
    labelled: np.ndarray
    labels: np.ndarray
    budget: int
    rng: np.random.Generator
    class_names: list[str]
    learner: Learner | None = None
    # the outputs the strategy declared (Strategy.outputs), set by Strategy.select; None: any
    declared: tuple[str, ...] | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def class_name(self, k: int) -> str:
        return self.class_names[int(k)]

    def _learner(self) -> Learner:
        if self.learner is None:
            raise RuntimeError("this query context has no learner; the strategy cannot ask for predictions")
        return self.learner

    def _asked(self, outputs: Sequence[str]) -> tuple[str, ...]:
        """``outputs`` as a key; RuntimeError when the strategy did not declare one of them."""
        wanted = tuple(sorted(set(outputs)))
        if self.declared is not None and not set(wanted) <= {"logits", *self.declared}:
            missing = sorted(set(wanted) - {"logits", *self.declared})
            raise RuntimeError(f"the strategy asked for {missing}, which its outputs() does not declare")
        return wanted

    def _cached(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def pool_predictions(self, outputs: Sequence[str] = ALL_OUTPUTS) -> Predictions:
        """The learner's ``outputs`` on the whole pool (K, N, ·), held in memory: for strategies
        whose method needs every pool item at once (k-means, k-center greedy, k-means++)."""
        wanted = self._asked(outputs)
        return self._cached(
            f"pool{wanted}", lambda: self._learner().predict(self.pool, outputs=wanted, desc="scoring pool")
        )

    def labelled_predictions(self, outputs: Sequence[str] = ALL_OUTPUTS) -> Predictions:
        """The same outputs on the labelled images."""
        wanted = self._asked(outputs)
        return self._cached(
            f"labelled{wanted}",
            lambda: self._learner().predict(self.labelled, outputs=wanted, desc="scoring labelled"),
        )

    def pool_batches(self, outputs: Sequence[str] = ("logits",)) -> Iterator[tuple[int, Predictions]]:
        """The learner's ``outputs`` on the pool one batch at a time: (offset into ``pool``,
        predictions (K, B, ·)); memory grows with the batch, not with the pool."""
        return self._learner().predict_batches(self.pool, outputs=self._asked(outputs), desc="scoring pool")

    def pool_rows(
        self, rows: Callable[[Predictions], np.ndarray], outputs: Sequence[str] = ("logits",)
    ) -> np.ndarray:
        """(N, D) float32: ``rows`` of each batch's predictions ((K, B, ·) -> (B, D)), filled batch
        by batch into one array: a per-item representation of the whole pool (for k-means,
        k-center greedy, k-means++) without holding the pool's (K, N, ·) outputs."""
        out: np.ndarray | None = None
        for start, batch in self.pool_batches(outputs):
            x = np.asarray(rows(batch), np.float32)
            if out is None:
                out = np.empty((len(self.pool), x.shape[1]), np.float32)
            out[start : start + len(x)] = x
        assert out is not None, "an empty pool has no rows"
        return out

    def pool_scores(
        self, score: Callable[[Predictions], np.ndarray], outputs: Sequence[str] = ("logits",)
    ) -> np.ndarray:
        """(N,) float64: ``score`` of each batch's predictions ((K, B, ·) -> (B,)), batch by batch."""
        out = np.empty(len(self.pool), np.float64)
        for start, batch in self.pool_batches(outputs):
            out[start : start + len(batch.logits[0])] = score(batch)
        return out

    def mc_dropout_scores(self, n_samples: int, score: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """(N,) float64: ``score`` of each batch's MC-dropout probabilities ((K * n_samples, B, C)
        -> (B,)), seeded from ``rng``; memory grows with the batch."""
        self._asked(["mc_dropout"])
        seed = int(self.rng.integers(2**31 - 1))
        out = np.empty(len(self.pool), np.float64)
        for start, probs in self._learner().predict_mc_batches(self.pool, n_samples=n_samples, seed=seed):
            out[start : start + probs.shape[1]] = score(probs)
        return out

    def mc_dropout_probs(self, n_samples: int) -> np.ndarray:
        """(K * n_samples, N, C) MC-dropout probabilities on the whole pool, seeded from ``rng``
        (held in memory: ``mc_dropout_scores`` reduces them batch by batch instead)."""
        self._asked(["mc_dropout"])
        seed = int(self.rng.integers(2**31 - 1))
        return self._cached(
            f"mc{n_samples}", lambda: self._learner().predict_mc(self.pool, n_samples=n_samples, seed=seed)
        )


class Strategy:
    """Base class of query strategies: ``select(ctx)`` checks the request and the answer.

    Subclasses are dataclasses (their fields are hyper-parameters) and implement ``choose``.
    Class attributes say what a strategy needs, so a run can refuse a combination before it
    starts: ``needs_learner`` (model outputs), ``min_networks`` (DUS compares two) and
    ``needs_dropout`` (MC dropout); ``outputs()`` which model outputs it reads and ``streams``
    whether it reads them batch by batch.
    """

    name: ClassVar[str] = "base"
    needs_learner: ClassVar[bool] = True
    min_networks: ClassVar[int] = 1
    needs_dropout: ClassVar[bool] = False
    # Memory: True where the strategy reduces the pool's predictions batch by batch (its peak grows
    # with the batch), False where its method needs a representation of every pool item at once
    # (k-means, k-center greedy, k-means++: it holds only that representation).
    streams: ClassVar[bool] = False

    def outputs(self) -> tuple[str, ...]:
        """What it asks the learner for (``unisal.train.evaluate.OUTPUTS``, or ``mc_dropout``);
        logits always come. The query context refuses anything else. By default everything: a
        strategy that declares less holds less."""
        return (*ALL_OUTPUTS, "mc_dropout")

    @classmethod
    def check(cls, cfg: RunConfig) -> None:
        """Raise ConfigError when the run's learner cannot give what this strategy needs. No I/O."""
        if cfg.learner.networks < cls.min_networks:
            raise ConfigError(
                f"strategy '{cls.name}' compares {cls.min_networks} networks, but the learner trains "
                f"{cfg.learner.networks}; use learner.networks {cls.min_networks} or another strategy"
            )
        if cls.needs_dropout and not cfg.model.drop_rate > 0:
            raise ConfigError(
                f"strategy '{cls.name}' uses MC dropout, but model.drop_rate is {cfg.model.drop_rate}; "
                "set --drop-rate above 0 (the cpu preset uses 0.2)"
            )

    def choose(self, ctx: QueryContext) -> Selection:
        raise NotImplementedError

    def select(self, ctx: QueryContext) -> Selection:
        """``ctx.budget`` unique pool positions; a clear error when the pool is too small."""
        n = len(ctx.pool)
        if ctx.budget < 1:
            raise RunError(f"the query budget must be at least 1, not {ctx.budget}")
        if ctx.budget > n:
            raise RunError(
                f"strategy '{self.name}': the budget ({ctx.budget}) exceeds the {n} unlabelled images left"
            )
        ctx.declared = self.outputs() if self.needs_learner else ()
        selection = self.choose(ctx)
        positions = np.asarray(selection.positions, dtype=np.int64)
        if (
            len(positions) != ctx.budget
            or len(np.unique(positions)) != len(positions)
            or (len(positions) and (positions.min() < 0 or positions.max() >= n))
            or len(selection.reasons) != len(positions)
            or (selection.scores is not None and np.shape(selection.scores) != (n,))
        ):
            raise RuntimeError(
                f"strategy '{self.name}' broke the contract: {len(positions)} positions "
                f"({len(np.unique(positions))} unique) for a budget of {ctx.budget} in a pool of {n}"
                + ("" if selection.scores is None else f", scores of shape {np.shape(selection.scores)}")
            )
        selection.positions = positions
        return selection


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Register a strategy dataclass under ``name`` (also set as its ``name``)."""
    return STRATEGIES.register(name)


def strategy_names() -> list[str]:
    return STRATEGIES.names()


def strategy_class(name: str) -> type[Strategy]:
    return STRATEGIES.get(name)


def strategy_params(cls: type[Strategy]) -> dict[str, Any]:
    """A strategy's hyper-parameters and their defaults."""
    if not dataclasses.is_dataclass(cls):
        return {}
    return {f.name: f.default for f in dataclasses.fields(cls)}


def _checked(name: str, key: str, value: Any, default: Any) -> Any:
    """``value`` with the type of ``default``, checked as a config value is
    (:func:`unisal.config.check_field`); numbers must be positive (every parameter is a count, a
    size or a weight)."""
    kind = type(default)
    meta = {"gt": 0} if kind in (int, float) else {}
    return check_field(key, value, kind, meta, what=f"strategy '{name}' parameter")


def create_strategy(name: str, params: dict[str, Any] | None = None, **shared: Any) -> Strategy:
    """The strategy ``name`` with its hyper-parameters checked.

    Args:
        params: this strategy's own values; an unknown key is an error.
        shared: run-wide values (e.g. ``kmeans_n_init``) given to the strategies that have them.
    """
    cls = strategy_class(name)
    known = strategy_params(cls)
    unknown = sorted(set(params or {}) - set(known))
    if unknown:
        raise ConfigError(
            f"strategy '{name}' has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters: {', '.join(sorted(known)) or 'none'}"
        )
    # run-wide values come checked by the config (query.explore may be 0: off); params here
    values = {k: v for k, v in shared.items() if k in known}
    values |= {k: _checked(name, k, v, known[k]) for k, v in (params or {}).items()}
    return cls(**values)
