"""One contract, run over every registered strategy; and the registry's own errors."""

from __future__ import annotations

import numpy as np
import pytest

from tests.query.helpers import TableLearner, context, random_outputs
from unisal.config import ConfigError, build_config
from unisal.errors import RunError
from unisal.query import Strategy, create_strategy, register_strategy, strategy_class, strategy_names
from unisal.query.baselines import RandomStrategy
from unisal.train.evaluate import Predictions

N, BUDGET = 60, 7
LABELLED = np.array([0, 5, 11, 23, 42, 59])
POOL = np.setdiff1d(np.arange(N), LABELLED)


def _outputs(agreeing: bool) -> Predictions:
    """Random outputs; with ``agreeing`` the networks disagree on only 3 images (< budget)."""
    outputs = random_outputs(N)
    if agreeing:
        logits = outputs.logits
        logits[1:] = logits[0]
        for i in POOL[:3]:  # network 2 moves three pool images to the class after network 1's
            logits[1, i, (logits[0, i].argmax() + 1) % logits.shape[2]] += 20.0
    return outputs


def test_builtin_strategies_are_registered():
    expected = {"random", "entropy", "margin", "least_confidence", "bald", "coreset", "badge", "kmeans"}
    assert expected | {"typiclust", "unisal", "dus_random", "cs_only"} <= set(strategy_names())
    assert strategy_names() == sorted(strategy_names())


@pytest.mark.parametrize("name", strategy_names())
@pytest.mark.parametrize("agreeing", [False, True], ids=["random", "agreeing"])
def test_strategy_contract(name, agreeing):
    strategy = create_strategy(name)
    assert strategy.name == name
    learner = TableLearner(_outputs(agreeing))

    def run(seed: int, budget: int = BUDGET):
        return strategy.select(context(learner, POOL, budget, seed, labelled=LABELLED))  # type: ignore[arg-type]

    selection = run(123)
    positions = selection.positions
    assert np.issubdtype(positions.dtype, np.integer)
    chosen = POOL[positions]
    assert len(chosen) == BUDGET and len(set(chosen.tolist())) == BUDGET
    assert not set(chosen.tolist()) & set(LABELLED.tolist())  # never a labelled image
    assert len(selection.reasons) == BUDGET
    assert all(isinstance(r, str) and r for r in selection.reasons)
    if selection.scores is not None:
        assert selection.scores.shape == (len(POOL),) and np.all(np.isfinite(selection.scores))
    assert all(isinstance(v, int | float) for v in selection.stats.values())
    np.testing.assert_array_equal(run(123).positions, positions)  # deterministic for a seed
    assert sorted(run(123, budget=len(POOL)).positions.tolist()) == list(range(len(POOL)))  # whole pool
    with pytest.raises(RunError, match=rf"budget \({len(POOL) + 1}\) exceeds the {len(POOL)} unlabelled"):
        run(123, budget=len(POOL) + 1)


def test_seeds_change_the_choice_of_randomised_strategies():
    learner = TableLearner(_outputs(False))
    for name in ("random", "dus_random", "badge"):
        picks = {
            tuple(create_strategy(name).select(context(learner, POOL, BUDGET, seed)).positions)  # type: ignore[arg-type]
            for seed in range(4)
        }
        assert len(picks) > 1, name


def test_a_strategy_without_a_learner_never_asks_for_one():
    selection = create_strategy("random").select(context(None, POOL, BUDGET))
    assert len(selection.positions) == BUDGET


@pytest.mark.parametrize("name", ["unisal", "dus_random"])
def test_strategies_comparing_two_networks_refuse_a_one_network_learner(name):
    cfg = build_config("cpu", {"learner": {"mode": "supervised", "networks": 1}})
    with pytest.raises(
        ConfigError, match=rf"strategy '{name}' compares 2 networks, but the learner trains 1"
    ):
        strategy_class(name).check(cfg)
    strategy_class(name).check(build_config("cpu", {"learner": {"mode": "supervised", "networks": 2}}))


def test_bald_refuses_a_learner_without_dropout():
    with pytest.raises(ConfigError, match="MC dropout, but model.drop_rate is 0.0"):
        strategy_class("bald").check(build_config("cpu", {"model": {"drop_rate": 0.0}}))
    strategy_class("bald").check(build_config("cpu"))  # the cpu preset has dropout 0.2


def test_strategy_parameters_are_checked():
    assert create_strategy("bald", {"mc_samples": 5}).mc_samples == 5  # type: ignore[attr-defined]
    assert create_strategy("unisal", kmeans_n_init=7).kmeans_n_init == 7  # type: ignore[attr-defined]
    assert not hasattr(create_strategy("entropy", kmeans_n_init=7), "kmeans_n_init")  # only where used
    with pytest.raises(
        ConfigError, match="strategy 'bald' has no parameter 'samples'; its parameters: mc_samples"
    ):
        create_strategy("bald", {"samples": 5})
    with pytest.raises(ConfigError, match="'mc_samples' must be a whole number"):
        create_strategy("bald", {"mc_samples": 2.5})
    with pytest.raises(ConfigError, match="'mc_samples' must be > 0"):
        create_strategy("bald", {"mc_samples": 0})
    with pytest.raises(ConfigError, match="'space' must be one of"):
        create_strategy("coreset", {"space": "pixels"})


def test_unknown_strategy_names_the_known_ones():
    with pytest.raises(ConfigError) as excinfo:
        create_strategy("nope")
    message = str(excinfo.value)
    assert "nope" in message
    for name in strategy_names():
        assert name in message


def test_duplicate_registration_is_refused_and_keeps_the_original():
    class Impostor(Strategy):
        pass

    with pytest.raises(KeyError, match="already registered"):
        register_strategy("random")(Impostor)
    assert isinstance(create_strategy("random"), RandomStrategy)
    assert Impostor.name == "base"


def test_scores_that_do_not_cover_the_pool_break_the_contract() -> None:
    """A strategy's scores are one per pool item (they are written as the pool's map)."""
    from dataclasses import dataclass

    from unisal.query.base import QueryContext, Selection, Strategy

    @dataclass
    class HalfScores(Strategy):
        needs_learner = False

        def choose(self, ctx: QueryContext) -> Selection:
            return Selection(np.arange(ctx.budget), ["x"] * ctx.budget, scores=np.zeros(len(ctx.pool) // 2))

    ctx = QueryContext(
        np.arange(10), np.arange(10, 12), np.zeros(2, np.int64), 3, np.random.default_rng(0), ["a", "b"]
    )
    with pytest.raises(RuntimeError, match=r"broke the contract.*scores of shape \(5,\)"):
        HalfScores().select(ctx)
