"""One contract, run over every registered strategy; and the registry's own errors."""

from __future__ import annotations

import numpy as np
import pytest

from unisal.config import ConfigError
from unisal.query import Strategy, create_strategy, register_strategy, strategy_names
from unisal.query.baselines import RandomStrategy
from unisal.train.evaluate import Predictions

POOL, BUDGET = 50, 7


def _random_predictions(agreeing: bool, k: int = 2, c: int = 4, p: int = 8) -> Predictions:
    """Random outputs; with ``agreeing`` the networks disagree on only 3 images (< budget)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=2.0, size=(k, POOL, c)).astype(np.float32)
    if agreeing:
        logits[1:] = logits[0]
        for i in range(3):  # network 2 moves images 0..2 to the class after network 1's
            logits[1, i, (logits[0, i].argmax() + 1) % c] += 20.0
    return Predictions(logits=logits, embeddings=rng.normal(size=(k, POOL, p)).astype(np.float32))


def test_builtin_strategies_are_registered():
    assert {"random", "unisal"} <= set(strategy_names())
    assert strategy_names() == sorted(strategy_names())


@pytest.mark.parametrize("name", strategy_names())
@pytest.mark.parametrize("budget", [BUDGET, POOL + 5])
@pytest.mark.parametrize("agreeing", [False, True], ids=["random", "agreeing"])
def test_strategy_contract(name, budget, agreeing):
    strategy = create_strategy(name)
    assert strategy.name == name
    preds = _random_predictions(agreeing) if strategy.needs_predictions else None

    def run(seed: int):
        return strategy.select(preds, pool_size=POOL, budget=budget, rng=np.random.default_rng(seed))

    selection = run(123)
    expected = min(budget, POOL)
    positions = np.asarray(selection.positions)
    assert np.issubdtype(positions.dtype, np.integer)
    assert len(positions) == expected
    assert len(set(positions.tolist())) == expected
    assert positions.min() >= 0 and positions.max() < POOL
    assert len(selection.reasons) == expected
    assert all(isinstance(r, str) and r for r in selection.reasons)
    assert 0 <= selection.n_candidates <= POOL
    np.testing.assert_array_equal(run(123).positions, positions)


def test_agreeing_predictions_disagree_on_three():
    probs = _random_predictions(agreeing=True).probs()
    assert np.flatnonzero(probs[0].argmax(1) != probs[1].argmax(1)).tolist() == [0, 1, 2]


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
