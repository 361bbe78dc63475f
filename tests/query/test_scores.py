"""Known answers for the scoring functions and for what each strategy picks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.query.helpers import TableLearner, context, random_outputs, select
from unisal.query import create_strategy, scores
from unisal.train.evaluate import Predictions


def test_uncertainty_scores_known_values():
    probs = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.6, 0.3, 0.1], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(scores.entropy(probs), [0.0, math.log(2), 0.897945, math.log(3)], atol=1e-6)
    np.testing.assert_allclose(scores.margin(probs), [1.0, 0.0, 0.3, 0.0], atol=1e-12)
    np.testing.assert_allclose(scores.least_confidence(probs), [0.0, 0.5, 0.4, 2 / 3], atol=1e-12)
    assert scores.top_k(np.array([0.1, 0.9, 0.5, 0.9]), 3).tolist() == [1, 3, 2]  # ties: lower first


def test_bald_is_zero_for_agreeing_samples_and_log2_for_confident_disagreement():
    agree = np.tile(np.array([[0.7, 0.3]]), (4, 1, 1))  # (S=4, N=1, C=2)
    disagree = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert scores.bald(agree)[0] == pytest.approx(0.0, abs=1e-9)
    assert scores.bald(disagree)[0] == pytest.approx(math.log(2))


def test_k_center_greedy_takes_the_farthest_points_in_order():
    pool = np.array([[0.0], [1.0], [2.0], [10.0], [5.0]])
    chosen, distance = scores.k_center_greedy(pool, np.array([[0.0]]), 2, np.random.default_rng(0))
    assert chosen.tolist() == [3, 4]  # 10 is farthest from 0; then 5 (5 from both 0 and 10)
    np.testing.assert_allclose(distance, [0, 1, 2, 10, 5])
    chosen, distance = scores.k_center_greedy(pool, pool[:0], 3, np.random.default_rng(0))
    assert len(set(chosen.tolist())) == 3 and np.all(np.isinf(distance))


def test_gradient_embeddings_match_the_cross_entropy_gradient():
    import torch

    rng = np.random.default_rng(0)
    logits, hidden = rng.normal(size=(5, 3)), rng.normal(size=(5, 4))
    got = scores.gradient_embeddings(logits, hidden)
    weight = torch.zeros(3, 4, requires_grad=True)
    for i in range(5):  # d CE(W h + z, argmax) / dW, where the logits are z at W = 0
        z = torch.tensor(logits[i]) + weight.double() @ torch.tensor(hidden[i])
        loss = torch.nn.functional.cross_entropy(z[None], torch.tensor([int(logits[i].argmax())]))
        (grad,) = torch.autograd.grad(loss, weight)
        np.testing.assert_allclose(got[i], grad.numpy().reshape(-1), atol=1e-5)


def test_kmeans_pp_seeds_start_at_the_largest_norm_and_never_repeat():
    x = np.array([[0.0, 0.1], [0.0, 0.0], [5.0, 5.0], [0.1, 0.0], [-3.0, 0.0]])
    seeds = scores.kmeans_pp_seeds(x, 5, np.random.default_rng(0))
    assert seeds[0] == 2 and sorted(seeds.tolist()) == [0, 1, 2, 3, 4]
    duplicates = np.zeros((4, 2))
    assert sorted(scores.kmeans_pp_seeds(duplicates, 4, np.random.default_rng(1)).tolist()) == [0, 1, 2, 3]


def _blobs(per_blob: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[10.0, 0.0], [0.0, 10.0], [-10.0, 0.0]])
    x = np.concatenate([c + rng.normal(size=(per_blob, 2)) for c in centres])
    return x, np.repeat(np.arange(3), per_blob)


def test_typiclust_covers_the_unlabelled_blob_first_with_a_typical_point():
    x, blob = _blobs()
    labelled = np.flatnonzero(blob != 2)[::15]  # 4 labelled images, none in blob 2
    pool = np.setdiff1d(np.arange(len(x)), labelled)
    chosen, _ = scores.typiclust_select(x[pool], x[labelled], 1, np.random.default_rng(0), max_clusters=3)
    assert blob[pool[chosen[0]]] == 2
    centre = x[blob == 2].mean(0)
    distance = np.linalg.norm(x[pool[chosen[0]]] - centre)
    assert distance < np.median(np.linalg.norm(x[blob == 2] - centre, axis=1))  # typical, not an outlier


def _table(n: int = 90) -> tuple[Predictions, np.ndarray]:
    x, blob = _blobs()
    outputs = random_outputs(n, f=2)
    outputs.features = np.repeat(x[None].astype(np.float32), 2, axis=0)
    outputs.embeddings = outputs.features.copy()
    return outputs, blob


def test_entropy_margin_and_least_confidence_pick_the_most_uncertain():
    outputs, _ = _table()
    outputs.logits[:] = np.array([8.0, 0.0, 0.0, 0.0], np.float32)  # confident everywhere ...
    uncertain = [4, 40, 77]
    outputs.logits[:, uncertain] = 0.0  # ... but here: uniform
    for name in ("entropy", "margin", "least_confidence"):
        selection = select(create_strategy(name), outputs, 3)
        assert sorted(selection.positions.tolist()) == uncertain, name
        assert np.argsort(-selection.scores)[:3].tolist() == sorted(uncertain)  # type: ignore[arg-type]


def test_bald_picks_what_dropout_disagrees_on():
    outputs, _ = _table()
    noise = np.full(90, 0.01)
    noise[[3, 50]] = 10.0
    learner = TableLearner(outputs, mc_noise=noise)
    selection = create_strategy("bald", {"mc_samples": 8}).select(context(learner, np.arange(90), 2))
    assert sorted(selection.positions.tolist()) == [3, 50]
    assert learner.calls == ["predict_mc_batches"]  # one pass, batch by batch


def test_coreset_and_kmeans_and_cs_only_spread_over_the_blobs():
    outputs, blob = _table()
    outputs.hidden = outputs.features.copy()
    for name in ("kmeans", "cs_only"):
        selection = select(create_strategy(name), outputs, 3)
        assert sorted(blob[selection.positions].tolist()) == [0, 1, 2], name
    labelled = np.flatnonzero(blob == 0)[:2]  # blob 0 is covered: core-set goes to 1 and 2
    pool = np.setdiff1d(np.arange(90), labelled)
    selection = create_strategy("coreset").select(context(TableLearner(outputs), pool, 2, labelled=labelled))
    assert sorted(blob[pool[selection.positions]].tolist()) == [1, 2]


def test_dus_random_draws_only_disagreements_and_reports_their_number():
    outputs, _ = _table()
    outputs.logits[1] = outputs.logits[0]
    moved = np.array([2, 9, 30, 31, 60, 88])
    outputs.logits[1, moved, (outputs.logits[0, moved].argmax(1) + 1) % 4] += 30.0
    selection = select(create_strategy("dus_random"), outputs, 4)
    assert set(selection.positions.tolist()) <= set(moved.tolist())
    assert selection.stats == {"n_candidates": 6}
    fallback = select(create_strategy("dus_random"), outputs, 8)
    assert set(moved.tolist()) <= set(fallback.positions.tolist())


def test_badge_prefers_uncertain_and_spread_items():
    outputs, blob = _table()
    outputs.logits[:] = np.array([9.0, 0.0, 0.0, 0.0], np.float32)
    outputs.hidden = np.repeat(np.eye(3)[blob][None].astype(np.float32) * 5, 2, axis=0)
    unsure = np.array([1, 31, 61])  # one per blob, uncertain: large gradients
    outputs.logits[:, unsure] = 0.0
    picks = [select(create_strategy("badge"), outputs, 3, seed).positions for seed in range(20)]
    assert all(p[0] in unsure for p in picks)  # the largest gradient first
    hits = np.mean([len(set(p.tolist()) & set(unsure.tolist())) for p in picks])
    assert hits >= 2.0  # chance would be 3 x 3 / 90 = 0.1
    blobs_hit = [len({blob[i] for i in p if i in unsure}) for p in picks]
    assert min(blobs_hit) >= 2  # uncertain items of different blobs, not the same one twice


def test_the_context_computes_each_prediction_once_and_only_when_asked():
    outputs, _ = _table()
    learner = TableLearner(outputs)
    labelled = np.array([0, 1])
    ctx = context(learner, np.arange(2, 90), 3, labelled=labelled)
    assert learner.calls == []  # nothing before a strategy asks
    create_strategy("coreset").select(ctx)
    # the pool batch by batch (only its space is held), the labelled set at once; once each
    assert learner.calls == ["predict_batches", "predict"]
    ctx.labelled_predictions(("hidden",))  # what coreset declared (its space): kept
    assert learner.calls == ["predict_batches", "predict"]
    with pytest.raises(
        RuntimeError, match=r"asked for \['features'\], which its outputs\(\) does not declare"
    ):
        ctx.pool_predictions(("features",))
