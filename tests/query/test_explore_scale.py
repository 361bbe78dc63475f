"""Exploration at scale (issue 18): from ``EXPLORE_PROJECT_FROM`` pool items UniSAL's exploration
compares the backbone features through a seeded random projection to 128 dimensions, which keeps
distances within a few percent and k-center greedy's coverage close to the exact one, at a tenth
of the memory for 1,280-d features."""

from __future__ import annotations

import numpy as np
import pytest

from tests.query.helpers import TableLearner, context
from unisal.query import unisal as unisal_module
from unisal.query.scores import k_center_greedy, l2_normalise, pairwise_sq_distances, random_projection
from unisal.query.unisal import EXPLORE_DIM, UniSALStrategy, scan_pool
from unisal.train.evaluate import Predictions


def clustered(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)) * 2.0
    return l2_normalise(centres[rng.integers(clusters, size=n)] + rng.normal(size=(n, dim)))


def test_the_projection_is_seeded_shared_by_batches_and_keeps_distances() -> None:
    x = clustered(600, 1280, 12, seed=0)
    whole = random_projection(x, 128)
    assert whole.shape == (600, 128) and whole.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(whole, axis=1), 1.0, rtol=1e-5)
    batched = np.concatenate([random_projection(x[:250], 128), random_projection(x[250:], 128)])
    np.testing.assert_array_equal(batched, whole)  # one matrix for every batch and the labelled set
    assert not np.array_equal(random_projection(x, 128, seed=1), whole)
    upper = np.triu_indices(600, k=1)
    before = np.sqrt(pairwise_sq_distances(x, x)[upper])
    after = np.sqrt(pairwise_sq_distances(whole, whole)[upper])
    ratio = after / before
    assert np.percentile(ratio, 2.5) > 0.85 and np.percentile(ratio, 97.5) < 1.15


def covering_radius(pool: np.ndarray, picks: np.ndarray, labelled: np.ndarray) -> float:
    """The largest distance from a pool point to its nearest pick or label (k-center's objective)."""
    centres = np.concatenate([pool[picks], labelled])
    return float(np.sqrt(pairwise_sq_distances(pool, centres).min(axis=1).max()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_k_center_in_the_projection_covers_the_pool_almost_as_well(seed: int) -> None:
    pool, labelled = clustered(4000, 1280, 40, seed), clustered(20, 1280, 40, seed + 10)
    exact, _ = k_center_greedy(pool, labelled, 30, np.random.default_rng(seed))
    projected, _ = k_center_greedy(
        random_projection(pool, 128), random_projection(labelled, 128), 30, np.random.default_rng(seed)
    )
    # measured in the features themselves: within 10 % of the exact greedy choice
    assert covering_radius(pool, projected, labelled) <= 1.10 * covering_radius(pool, exact, labelled)


def test_a_large_pool_explores_in_the_projection(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    n, width = 300, 256
    feats = np.repeat(clustered(n, width, 6, seed=3)[None], 2, axis=0)
    logits = rng.normal(size=(2, n, 3)).astype(np.float32)
    outputs = Predictions(logits, rng.normal(size=(2, n, 8)).astype(np.float32), feats, feats)
    pool, labelled = np.arange(280), np.arange(280, n)
    small = scan_pool(context(TableLearner(outputs), pool, 10, labelled=labelled), keep=4, features=True)
    assert small.features is not None and small.features.shape == (280, width)
    monkeypatch.setattr(unisal_module, "EXPLORE_PROJECT_FROM", 100)
    chosen = UniSALStrategy(explore=0.3).select(context(TableLearner(outputs), pool, 10, labelled=labelled))
    assert chosen.stats["n_explored"] == 3 and len(set(chosen.positions.tolist())) == 10
    scan = scan_pool(context(TableLearner(outputs), pool, 10, labelled=labelled), keep=4, features=True,
                     project=EXPLORE_DIM)  # fmt: skip
    assert scan.features is not None and scan.features.shape == (280, EXPLORE_DIM)
    np.testing.assert_array_equal(scan.features, random_projection(l2_normalise(feats[0, :280]), EXPLORE_DIM))
