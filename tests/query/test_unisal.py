"""UniSAL selection: disagreement candidates, compact selection, and the documented fallback."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.query.helpers import select
from unisal.errors import RunError
from unisal.query import create_strategy
from unisal.query.unisal import (
    UniSALStrategy,
    compact_selection,
    disagreement_candidates,
    mean_entropy,
)
from unisal.train.evaluate import Predictions


def test_disagreement_candidates_are_exactly_the_differing_positions():
    rng = np.random.default_rng(0)
    pred_a = rng.integers(0, 4, size=300)
    pred_b = rng.integers(0, 4, size=300)
    expected = sorted({i for i, (a, b) in enumerate(zip(pred_a, pred_b, strict=True)) if a != b})
    got = disagreement_candidates(pred_a, pred_b)
    assert got.tolist() == expected
    assert 0 < len(got) < 300


def test_disagreement_candidates_empty_when_identical():
    pred = np.array([2, 0, 1, 1, 3])
    assert len(disagreement_candidates(pred, pred.copy())) == 0
    assert disagreement_candidates([0, 1, 2], [0, 2, 2]).tolist() == [1]  # lists are accepted


def test_mean_entropy_known_values():
    uniform = np.full((2, 1, 4), 0.25)
    one_hot = np.array([[[1.0, 0.0, 0.0, 0.0]], [[1.0, 0.0, 0.0, 0.0]]])
    disagreeing = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # averages to [0.5, 0.5]
    assert mean_entropy(uniform)[0] == pytest.approx(math.log(4))
    assert mean_entropy(one_hot)[0] == pytest.approx(0.0, abs=1e-9)
    assert mean_entropy(disagreeing)[0] == pytest.approx(math.log(2))


def _blobs(n_blobs: int = 5, per_blob: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = 50.0 * np.eye(n_blobs, 3 if n_blobs <= 3 else n_blobs)
    features = np.concatenate([c + rng.normal(scale=1.0, size=(per_blob, len(c))) for c in centres])
    blob = np.repeat(np.arange(n_blobs), per_blob)
    order = rng.permutation(len(features))  # interleave blobs so positions say nothing
    return features[order].astype(np.float32), blob[order]


def test_compact_selection_takes_the_point_nearest_each_blob_mean():
    features, blob = _blobs()
    chosen = compact_selection(features, budget=5, rng=np.random.default_rng(0))
    assert len(chosen) == 5 and len(set(chosen.tolist())) == 5
    assert sorted(blob[chosen].tolist()) == [0, 1, 2, 3, 4]  # one per blob
    for k in range(5):
        members = np.flatnonzero(blob == k)
        mean = features[members].astype(np.float64).mean(axis=0)
        nearest = members[np.argmin(((features[members] - mean) ** 2).sum(axis=1))]
        assert nearest in chosen


def test_compact_selection_returns_everything_when_budget_covers_it():
    features, _ = _blobs(per_blob=2)
    np.testing.assert_array_equal(compact_selection(features, 10, np.random.default_rng(0)), np.arange(10))
    np.testing.assert_array_equal(compact_selection(features, 25, np.random.default_rng(0)), np.arange(10))


def test_compact_selection_is_deterministic_for_a_seed():
    features = np.random.default_rng(3).normal(size=(80, 6)).astype(np.float32)
    first = compact_selection(features, 9, np.random.default_rng(42))
    second = compact_selection(features, 9, np.random.default_rng(42))
    np.testing.assert_array_equal(first, second)
    assert len(set(first.tolist())) == 9


def _predictions(pred_a: np.ndarray, pred_b: np.ndarray, n_classes: int, seed: int = 0) -> Predictions:
    """Confident one-hot-ish logits for two networks with the given argmaxes."""
    rng = np.random.default_rng(seed)
    n = len(pred_a)
    logits = np.zeros((2, n, n_classes), np.float32)
    logits[0, np.arange(n), pred_a] = 6.0
    logits[1, np.arange(n), pred_b] = 6.0
    logits += rng.normal(scale=0.05, size=logits.shape).astype(np.float32)
    embeddings = rng.normal(size=(2, n, 8)).astype(np.float32)
    return Predictions(logits=logits, embeddings=embeddings)


def _check_unique(positions: np.ndarray, expected_len: int, pool_size: int) -> None:
    assert np.issubdtype(positions.dtype, np.integer)
    assert len(positions) == expected_len
    assert len(set(positions.tolist())) == expected_len
    assert positions.min() >= 0 and positions.max() < pool_size


def test_select_chooses_only_candidates_when_there_are_enough():
    n, budget = 60, 5
    rng = np.random.default_rng(1)
    pred_a = rng.integers(0, 3, size=n)
    pred_b = pred_a.copy()
    disagree = np.sort(rng.choice(n, size=20, replace=False))
    pred_b[disagree] = (pred_a[disagree] + 1) % 3
    preds = _predictions(pred_a, pred_b, n_classes=3)
    selection = select(UniSALStrategy(), preds, budget, 0)
    _check_unique(selection.positions, budget, n)
    assert set(selection.positions.tolist()) <= set(disagree.tolist())
    assert selection.stats["n_candidates"] == 20
    assert len(selection.reasons) == budget
    assert all(r.startswith("networks disagree") for r in selection.reasons)


def test_select_names_classes_in_reasons():
    preds = _predictions(np.array([0, 1, 1]), np.array([1, 1, 1]), n_classes=2)
    selection = select(create_strategy("unisal"), preds, 1, class_names=["benign", "tumour"])
    assert selection.positions.tolist() == [0]
    assert selection.reasons[0].startswith("networks disagree (benign vs tumour)")


def _fallback_pool() -> tuple[Predictions, np.ndarray, np.ndarray, int]:
    """40 images: 2 disagreements, 6 known high-entropy agreements, one just below them."""
    n, c = 40, 3
    pred_a = np.zeros(n, dtype=np.int64)
    pred_b = pred_a.copy()
    candidates = np.array([3, 17])
    pred_b[candidates] = 2
    preds = _predictions(pred_a, pred_b, n_classes=c, seed=5)
    high = np.array([5, 9, 21, 26, 30, 38])
    # both networks still agree on class 0, with margins 0.05..0.30: near-uniform, high entropy
    for rank, i in enumerate(high):
        preds.logits[:, i] = [0.05 * (rank + 1), 0.0, 0.0]
    runner_up = 12
    preds.logits[:, runner_up] = [1.0, 0.0, 0.0]  # uncertain, but 7th: outside a shortlist of 6
    return preds, candidates, high, runner_up


def test_select_fallback_takes_all_candidates_then_high_entropy():
    preds, candidates, high, runner_up = _fallback_pool()
    entropy = mean_entropy(preds.probs())
    others = np.setdiff1d(np.arange(40), candidates)
    assert set(others[np.argsort(-entropy[others])][:6].tolist()) == set(high.tolist())  # setup check
    budget = 5  # remainder 3 -> shortlist of the 6 highest-entropy non-candidates
    for seed in range(4):
        selection = select(UniSALStrategy(), preds, budget, seed)
        _check_unique(selection.positions, budget, 40)
        chosen = set(selection.positions.tolist())
        assert set(candidates.tolist()) <= chosen
        assert chosen - set(candidates.tolist()) <= set(high.tolist())
        assert runner_up not in chosen
        assert selection.stats["n_candidates"] == 2
        assert [r.startswith("networks disagree") for r in selection.reasons] == [True] * 2 + [False] * 3
        assert all(r.startswith("fallback") for r in selection.reasons[2:])


def test_select_without_candidates_still_fills_the_budget():
    preds, _, high, _ = _fallback_pool()
    preds.logits[1] = preds.logits[0]  # now the networks agree everywhere
    selection = select(UniSALStrategy(), preds, 3, 0)
    _check_unique(selection.positions, 3, 40)
    assert selection.stats["n_candidates"] == 0
    assert set(selection.positions.tolist()) <= set(high.tolist())  # the top 2 x 3 by entropy


def test_select_budget_larger_than_pool_is_a_clear_error():
    pred_a = np.array([0, 1, 2, 0, 1, 2])
    pred_b = np.array([0, 2, 2, 1, 1, 2])  # 2 candidates
    preds = _predictions(pred_a, pred_b, n_classes=3)
    with pytest.raises(RunError, match=r"budget \(10\) exceeds the 6 unlabelled images"):
        select(UniSALStrategy(), preds, 10)
    selection = select(UniSALStrategy(), preds, 6)
    assert sorted(selection.positions.tolist()) == list(range(6))
    assert selection.stats["n_candidates"] == 2


def test_exploration_finds_a_class_the_labels_lack_and_the_rest_is_dus_cs():
    """A pool of 40 items near the labels (where the networks disagree on 20) and 5 items of a
    class no label holds, far away in the backbone's features and predicted confidently as a
    known class by both networks: disagreement never picks them; explore 0.25 of a budget of 4
    spends one pick on them, the other three are DUS + CS among the disagreements."""
    from tests.query.helpers import TableLearner, context
    from unisal.query.unisal import exploration_share

    rng = np.random.default_rng(0)
    n_near, n_far = 40, 5

    def near(m: int) -> np.ndarray:  # the known classes: one region of the feature space
        return np.concatenate([5.0 + rng.normal(size=(m, 7)), np.zeros((m, 1))], axis=1)

    unseen = np.concatenate([np.zeros((n_far, 7)), 30.0 + rng.normal(size=(n_far, 1))], axis=1)
    features = np.concatenate([near(n_near), unseen])
    labelled_features = near(6)
    feats = np.concatenate([features, labelled_features])[None].repeat(2, axis=0).astype(np.float32)
    n = len(feats[0])
    logits = np.zeros((2, n, 3), np.float32)
    logits[:, :, 0] = 5.0  # both networks say class 0 everywhere ...
    logits[1, :20, 0], logits[1, :20, 1] = 0.0, 5.0  # ... except network 2 on the first 20 near items
    outputs = Predictions(logits, rng.normal(size=(2, n, 4)).astype(np.float32), feats, feats)
    pool, labelled = np.arange(n_near + n_far), np.arange(n_near + n_far, n)
    ctx = context(TableLearner(outputs), pool, 4, labelled=labelled)
    chosen = UniSALStrategy(explore=0.25).select(ctx)
    far = set(range(n_near, n_near + n_far))
    assert sum(int(p) in far for p in chosen.positions) == 1
    assert chosen.reasons[0].startswith("exploration") and chosen.stats["n_explored"] == 1
    assert all(int(p) < 20 for p in chosen.positions[1:])  # the rest: disagreements only
    plain = UniSALStrategy().select(context(TableLearner(outputs), pool, 4, labelled=labelled))
    assert not far & set(plain.positions.tolist()) and "n_explored" not in plain.stats
    assert [exploration_share(0.1, b) for b in (1, 2, 10, 20, 100)] == [0, 1, 1, 2, 10]
    assert exploration_share(0.0, 100) == 0 and exploration_share(0.9, 3) == 2


def test_query_explore_reaches_unisal_only():
    assert create_strategy("unisal", {}, explore=0.1).explore == 0.1  # type: ignore[attr-defined]
    assert not hasattr(create_strategy("margin", {}, explore=0.1), "explore")
    assert create_strategy("unisal", {}, explore=0.0).explore == 0.0  # type: ignore[attr-defined]  # off, as v1 pins it
