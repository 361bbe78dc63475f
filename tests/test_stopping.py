"""The stabilising-predictions stopping criterion (Bloodgood & Vijay-Shanker 2009): known answers."""

from __future__ import annotations

import numpy as np
import pytest

from unisal.stopping import agreement_kappa, first_stop, stabilised, stop_set


def test_stop_set_is_a_seeded_sorted_sample_of_the_pool() -> None:
    pool = np.arange(100, 200)
    a = stop_set(pool, 10, np.random.default_rng(3))
    assert len(a) == 10 and len(set(a.tolist())) == 10 and set(a.tolist()) <= set(pool.tolist())
    assert np.all(np.diff(a) > 0)
    assert np.array_equal(a, stop_set(pool, 10, np.random.default_rng(3)))
    assert np.array_equal(
        stop_set(pool, 500, np.random.default_rng(0)), pool
    )  # larger than the pool: all of it
    assert len(stop_set(pool, 0, np.random.default_rng(0))) == 0  # off


def test_kappa_of_known_tables() -> None:
    same = np.array([0, 1, 2, 0, 1, 2])
    assert agreement_kappa(same, same) == 1.0
    assert agreement_kappa(np.zeros(5, int), np.zeros(5, int)) == 1.0  # one class in both: 0/0 in the formula
    # 2x2 table [[2, 1], [1, 2]]: observed agreement 4/6, chance 1/2, kappa (2/3 - 1/2) / (1/2) = 1/3
    assert agreement_kappa(np.array([0, 0, 0, 1, 1, 1]), np.array([0, 0, 1, 0, 1, 1])) == pytest.approx(1 / 3)
    assert agreement_kappa(np.array([0, 1, 0, 1]), np.array([1, 0, 1, 0])) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        agreement_kappa(np.zeros(3), np.zeros(4))


def test_the_criterion_fires_when_the_window_mean_reaches_the_threshold() -> None:
    kappas = [None, 0.80, 0.97, 0.995, 0.99, 0.996, 1.0]
    assert not stabilised(kappas[:3])
    assert not stabilised(kappas[:5])  # mean(0.97, 0.995, 0.99) = 0.985
    assert stabilised(kappas[:6])  # mean(0.995, 0.99, 0.996) = 0.9937
    assert first_stop(kappas) == 5
    assert first_stop(kappas, window=1, threshold=0.99) == 3
    assert first_stop([None, 1.0, 1.0]) is None  # the first round has no comparison: the window is not full
    assert first_stop([0.5, 0.6], threshold=0.99) is None


def test_stop_signal_is_one_step_of_the_criterion() -> None:
    from unisal.stopping import stop_signal

    assert stop_signal(None, ["a", "b"], [], window=1, threshold=0.5) == (None, False)  # the first round
    kappa, stopped = stop_signal(["a", "b", "a", "b"], ["a", "b", "a", "b"], [0.2], window=2, threshold=0.6)
    assert (kappa, stopped) == (1.0, True)  # mean(0.2, 1.0) = 0.6
    assert stop_signal(["a", "b"], ["b", "a"], [1.0], window=2, threshold=0.6)[1] is False
