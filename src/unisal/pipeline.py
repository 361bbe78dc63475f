"""One active-learning round, whoever gives the labels.

A simulation (``unisal.loop``: the labels come from an oracle, results go to a run folder) and a
labelling project (``unisal.app.rounds``: the labels come from the store, results go to its
database and queue) run the same steps through these functions, on a :class:`PreparedData`
(items decoded by ``unisal.data.prepare``, a split):

1. :func:`make_strategy` and :func:`check_run_settings`: the settings, checked without I/O;
2. :func:`unlabelled_for`: what semi-supervision sees besides the labels;
3. :func:`fit_round`: the one call of ``Learner.fit`` (seeds from ``unisal.seeds.fit_seeds``),
   and :func:`cross_validate` for an estimate from the labels alone;
4. :func:`stop_predictions`: the round's predictions on the stop set, for the stop signal;
5. :func:`select`: the one place a :class:`QueryContext` is built and a strategy chooses.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from unisal.config import ConfigError, RunConfig
from unisal.data.prepare import PreparedData
from unisal.data.readers import check_reader_options
from unisal.estimate import fold_metrics
from unisal.learners import Learner, learner_class
from unisal.query import QueryContext, Selection, Strategy, create_strategy, strategy_class
from unisal.seeds import fit_seeds
from unisal.settings import check_names
from unisal.train.fit import FitResult, TrainingSets


def check_run_settings(cfg: RunConfig) -> None:
    """Names, reader options, learner, backbone, strategy and their combination, checked without
    any I/O."""
    check_names(cfg)
    if cfg.data.format != "auto":  # else the reader is known once the path is read
        check_reader_options(cfg.data.format, cfg.data.reader_options)
    learner_class(cfg.learner.name).check(cfg)
    strategy_class(cfg.query.strategy).check(cfg)
    make_strategy(cfg)
    if cfg.query.pool_subset is not None and cfg.query.pool_subset < cfg.query.budget:
        raise ConfigError(
            f"query.pool_subset ({cfg.query.pool_subset}) must be at least the budget ({cfg.query.budget})"
        )


def pixels_needed(cfg: RunConfig) -> bool:
    """Whether the run's learner reads pixels after ``prepare`` (so they cannot be streamed:
    ``unisal.data.prepare.streams_pixels``)."""
    return learner_class(cfg.learner.name).reads_pixels


def make_strategy(cfg: RunConfig) -> Strategy:
    """The run's strategy with its parameters (``query.params``) checked."""
    return create_strategy(
        cfg.query.strategy, cfg.query.params, kmeans_n_init=cfg.query.kmeans_n_init, explore=cfg.query.explore
    )


def unlabelled_for(data: PreparedData, labelled: np.ndarray) -> np.ndarray:
    """The training images without a label at this round (U,): the training split's labelled
    images not in ``labelled`` (a simulation's unrevealed pool), then those without any label (a
    project's pool, a data set's unlabelled rows)."""
    return np.concatenate([np.setdiff1d(data.idx_train, labelled), data.idx_unlabelled_extra])


def fit_round(
    learner: Learner,
    data: PreparedData,
    labelled: np.ndarray,
    unlabelled: np.ndarray,
    *,
    seed: int,
    round_: int,
    part: int = 0,
    validate: bool = True,
) -> FitResult:
    """Train ``learner`` on the labelled images (L,) with the unlabelled ones (U,) beside them,
    and the validation split when ``validate``; ``part`` tells the fits of one round apart (0: the
    round's model; k: cross-validation fold k)."""
    labels = data.catalogue.labels
    val = data.idx_val if validate else np.empty(0, np.int64)
    sets = TrainingSets(labelled, labels[labelled], unlabelled, val, labels[val])
    return learner.fit(sets, **fit_seeds(seed, round_, part))


def cross_validate(
    learner: Learner,
    data: PreparedData,
    labelled: np.ndarray,
    unlabelled: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    *,
    seed: int,
    round_: int,
) -> tuple[list[dict[str, float]], list[dict[str, Any]]]:
    """Fit on each fold's training part of ``labelled`` and score its held-out part
    (``unisal.estimate.fold_metrics``); folds are positions into ``labelled``. Also the guard's
    verdict of each fit (empty dicts where it did not run). The learner holds the last fold's
    model afterwards."""
    labels = data.catalogue.labels
    scores, guards = [], []
    for part, (a, b) in enumerate(folds, start=1):
        result = fit_round(
            learner, data, labelled[a], unlabelled, seed=seed, round_=round_, part=part, validate=False
        )
        scores.append(fold_metrics(learner, labelled[b], labels[labelled[b]]))
        guards.append(result.guard or {})
    return scores, guards


def stop_predictions(learner: Learner, data: PreparedData, idx: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The class names predicted for the stop set ``idx`` (S,), and the logits behind them
    (K, S, C) for the round's diagnostics."""
    logits = learner.predict(idx).logits
    names = data.catalogue.class_names
    return [names[int(k)] for k in logits.mean(0).argmax(1)], logits


def select(
    strategy: Strategy,
    learner: Learner | None,
    data: PreparedData,
    *,
    pool: np.ndarray,
    labelled: np.ndarray,
    budget: int,
    rng: np.random.Generator,
) -> Selection:
    """The strategy's choice of ``budget`` images of ``pool`` (P,) given the labelled ones (L,):
    positions into ``pool``, reasons, and the whole pool's scores where the strategy has them."""
    cat = data.catalogue
    ctx = QueryContext(
        pool=pool,
        labelled=labelled,
        labels=cat.labels[labelled],
        budget=budget,
        rng=rng,
        class_names=cat.class_names,
        learner=learner if strategy.needs_learner else None,
    )
    return strategy.select(ctx)


def select_capped(
    strategy: Strategy,
    learner: Learner | None,
    data: PreparedData,
    *,
    pool: np.ndarray,
    labelled: np.ndarray,
    budget: int,
    rng: np.random.Generator,
    owners: np.ndarray,
    cap: int,
) -> Selection:
    """:func:`select` with at most ``cap`` chosen items per owner (``owners`` (P,): each pool
    item's slide): a slide's choices past its cap are dropped, in the strategy's order, and the
    shortfall is chosen again from the items of the slides still under it, until ``budget`` or
    no such item is left. ``cap`` 0: no cap. The scores are those of the first, whole-pool pass."""
    first = select(strategy, learner, data, pool=pool, labelled=labelled, budget=budget, rng=rng)
    if cap <= 0:
        return first
    chosen: list[int] = []
    reasons: list[str] = []
    taken: dict[Any, int] = {}
    selection, offered = first, np.arange(len(pool))
    while True:
        for p, why in zip(selection.positions, selection.reasons, strict=True):
            owner = owners[offered[p]]
            if taken.get(owner, 0) < cap and len(chosen) < budget:
                chosen.append(int(offered[p]))
                reasons.append(why)
                taken[owner] = taken.get(owner, 0) + 1
        full = np.asarray([taken.get(o, 0) >= cap for o in owners], bool)
        left = np.setdiff1d(np.flatnonzero(~full), chosen)
        if len(chosen) >= budget or not len(left):
            break
        offered = left
        selection = select(
            strategy, learner, data, pool=pool[left], labelled=labelled,
            budget=min(budget - len(chosen), len(left)), rng=rng,
        )  # fmt: skip
    return Selection(np.asarray(chosen, np.int64), reasons, first.scores, first.stats)
