"""Strategies that stream read the pool's predictions batch by batch, and choose exactly what they
would choose from the whole pool at once; the others hold only the outputs they declare."""

from __future__ import annotations

import numpy as np
import pytest

from tests.query.helpers import TableLearner, context, random_outputs
from unisal.query import create_strategy, strategy_class, strategy_names
from unisal.train.evaluate import Predictions

N, BUDGET = 90, 8
LABELLED = np.array([0, 7, 30, 61])
POOL = np.setdiff1d(np.arange(N), LABELLED)
STREAMING = [name for name in strategy_names() if strategy_class(name).streams]
LEARNED = [name for name in strategy_names() if strategy_class(name).needs_learner]


def _outputs(disagreeing: int | None) -> Predictions:
    """Random outputs; with ``disagreeing`` the networks disagree on that many pool images only."""
    outputs = random_outputs(N, seed=3)
    if disagreeing is not None:
        logits = outputs.logits
        logits[1:] = logits[0]
        for i in POOL[:: len(POOL) // max(disagreeing, 1)][:disagreeing]:
            logits[1, i, (logits[0, i].argmax() + 1) % logits.shape[2]] += 20.0
    return outputs


def _select(name: str, outputs: Predictions, batch_size: int, **params: float) -> tuple[object, TableLearner]:
    learner = TableLearner(outputs, mc_noise=np.linspace(0.1, 2.0, N), batch_size=batch_size)
    ctx = context(learner, POOL, BUDGET, seed=5, labelled=LABELLED)
    return create_strategy(name, {}, **params).select(ctx), learner


def test_the_streaming_strategies_are_those_whose_method_allows_it() -> None:
    assert set(STREAMING) == {"entropy", "margin", "least_confidence", "bald", "unisal", "dus_random"}


CASES = [(name, disagreeing, 0.0) for name in STREAMING for disagreeing in (None, 3)]
CASES += [("unisal", disagreeing, 0.25) for disagreeing in (None, 3)]  # exploration is UniSAL's


@pytest.mark.parametrize(("name", "disagreeing", "explore"), CASES)
def test_a_streamed_choice_is_the_choice_from_the_whole_pool(
    name: str, disagreeing: int | None, explore: float
) -> None:
    """Batches of 7 (several, the last one short) give the positions, reasons and scores of one
    batch holding the whole pool: the reductions (UniSAL's fallback shortlist included) do not
    depend on where the batches fall."""
    params = {"explore": explore} if name == "unisal" else {}
    outputs = _outputs(disagreeing)
    streamed, learner = _select(name, outputs, 7, **params)
    whole, _ = _select(name, outputs, len(POOL), **params)
    assert streamed.positions.tolist() == whole.positions.tolist()  # type: ignore[attr-defined]
    assert streamed.reasons == whole.reasons  # type: ignore[attr-defined]
    np.testing.assert_array_equal(streamed.scores, whole.scores)  # type: ignore[attr-defined]
    # the pool only in batches; the labelled set whole where exploration compares with it
    expected = {"bald": ["predict_mc_batches"]}.get(name, ["predict_batches"]) + (
        ["predict"] if explore else []
    )
    assert learner.calls == expected


def test_unisal_keeps_the_candidates_and_the_fallback_shortlist_only() -> None:
    """3 disagreements for a budget of 8: every candidate chosen, then 5 of the 10 (2 x 5) others of
    highest entropy (by their entropy, computed here from the whole pool)."""
    from unisal.query.scores import mean_entropy
    from unisal.query.unisal import scan_pool

    outputs = _outputs(3)
    learner = TableLearner(outputs, batch_size=7)
    ctx = context(learner, POOL, BUDGET, seed=5, labelled=LABELLED)
    ctx.declared = ("embeddings",)
    scan = scan_pool(ctx, keep=2 * BUDGET, features=False)
    assert len(scan.candidates) == 3 and len(scan.candidate_embeddings) == 3
    probs = Predictions(outputs.logits[:, POOL]).probs()
    others = np.setdiff1d(np.arange(len(POOL)), scan.candidates)
    entropy = mean_entropy(probs[:, others])
    expected = others[np.argsort(-entropy, kind="stable")[: 2 * BUDGET]]
    assert scan.shortlist.tolist() == expected.tolist()
    np.testing.assert_array_equal(scan.shortlist_embeddings, outputs.embeddings[:, POOL[expected]].mean(0))
    assert scan.features is None
    selection = create_strategy("unisal").select(
        context(TableLearner(outputs), POOL, BUDGET, labelled=LABELLED)
    )
    assert set(scan.candidates.tolist()) <= set(selection.positions.tolist())
    assert set(selection.positions.tolist()) - set(scan.candidates.tolist()) <= set(expected[:10].tolist())


@pytest.mark.parametrize("name", LEARNED)
def test_every_strategy_reads_only_the_outputs_it_declares(name: str) -> None:
    """The table learner hands out only what was asked for (the rest None), so a strategy reading
    an output it did not declare would fail here."""
    selection, learner = _select(name, _outputs(None), 7)
    assert len(selection.positions) == BUDGET  # type: ignore[attr-defined]
    assert learner.calls


def test_a_strategy_that_declares_nothing_may_ask_for_everything() -> None:
    """A plug-in written before outputs() existed keeps working: it gets every output, and the
    whole-pool MC-dropout probabilities."""
    from dataclasses import dataclass

    from unisal.query import Strategy
    from unisal.query.base import Selection

    @dataclass
    class Farthest(Strategy):
        def choose(self, ctx):  # type: ignore[no-untyped-def]
            features = ctx.pool_predictions().features.mean(0)
            assert ctx.mc_dropout_probs(2).shape[:2] == (4, len(ctx.pool))
            chosen = np.argsort(-np.linalg.norm(features, axis=1), kind="stable")[: ctx.budget]
            return Selection(chosen, ["far"] * ctx.budget)

    learner = TableLearner(_outputs(None))
    selection = Farthest().select(context(learner, POOL, BUDGET, labelled=LABELLED))
    assert len(selection.positions) == BUDGET and learner.calls == ["predict", "predict_mc"]
