"""The guard against degenerate co-trained heads (issue 15, item 3): known answers on hand-made logits."""

from __future__ import annotations

import numpy as np
import pytest

from unisal.guard import guard_verdict

NAMES = ["benign", "adeno", "squamous"]


def logits(classes: list[int]) -> np.ndarray:
    return np.eye(3)[classes] * 4.0


POOL = [0, 1, 2] * 20  # the supervised heads see three equal classes on the pool
LABELS = np.array([0, 1, 2, 0, 1, 2])


def test_healthy_heads_pass() -> None:
    verdict = guard_verdict(
        logits(POOL), logits(POOL), logits(LABELS.tolist()), logits(LABELS.tolist()), LABELS, NAMES
    )
    assert (
        not verdict.fallback
        and verdict.reason == ""
        and verdict.kappa == 1.0
        and verdict.share_ratio_min == 1.0
    )
    assert verdict.record() == {
        "guard_fallback": 0,
        "guard_reason": "",
        "guard_kappa": 1.0,
        "guard_share_ratio": 1.0,
    }


def test_a_vanishing_class_falls_back_and_says_which() -> None:
    """The co-trained heads call most benign patches adenocarcinoma: benign falls from a third
    of the pool to 5 % (under half of it), and the verdict names it with both shares."""
    collapsed = [1 if c == 0 and k >= 9 else c for k, c in enumerate(POOL)]  # 3 of 60 still benign
    verdict = guard_verdict(
        logits(collapsed), logits(POOL), logits(LABELS.tolist()), logits(LABELS.tolist()), LABELS, NAMES
    )
    assert verdict.fallback
    assert "predict benign on 5.0% of the pool, the supervised heads on 33.3%" in verdict.reason
    assert verdict.share_ratio_min == pytest.approx(0.15)


def test_a_labelled_class_no_longer_fitted_falls_back() -> None:
    """Same pool predictions, but the co-trained heads miss both labelled squamous images."""
    missed = [0, 1, 1, 0, 1, 1]
    verdict = guard_verdict(
        logits(POOL), logits(POOL), logits(missed), logits(LABELS.tolist()), LABELS, NAMES
    )
    assert (
        verdict.fallback
        and "recall 0% of the labelled squamous images, the supervised heads 100%" in verdict.reason
    )


def test_a_class_the_labels_do_not_hold_or_too_rare_a_class_does_not_count() -> None:
    """A class without labels may vanish (nothing to compare), and so may one the supervised heads
    themselves give under 2 % of the pool."""
    labels = np.array([0, 1, 0, 1])
    sup = [0, 1] * 30
    verdict = guard_verdict(
        logits(sup), logits(sup), logits([0, 1, 0, 1]), logits([0, 1, 0, 1]), labels, NAMES
    )
    assert not verdict.fallback
    rare_sup = [0, 1] * 50 + [2]  # squamous on 1 % of the pool
    rare_cot = [0, 1] * 50 + [0]
    lab = np.array([0, 1, 2])
    verdict = guard_verdict(
        logits(rare_cot), logits(rare_sup), logits([0, 1, 2]), logits([0, 1, 2]), lab, NAMES
    )
    assert "predict squamous" not in verdict.reason


def test_heads_that_disagree_everywhere_fall_back_on_kappa() -> None:
    rotated = [(c + 1) % 3 for c in POOL]
    verdict = guard_verdict(
        logits(rotated), logits(POOL), logits(LABELS.tolist()), logits(LABELS.tolist()), LABELS, NAMES
    )
    assert verdict.fallback and "agree little on the pool" in verdict.reason and verdict.kappa < 0


def test_the_lab_is_told_when_a_round_fell_back() -> None:
    from unisal.app.rounds import guard_message

    assert guard_message({"metrics": {"guard_fallback": 0}}) == "" and guard_message({"metrics": None}) == ""
    text = guard_message(
        {"metrics": {"guard_fallback": 1, "guard_reason": "the co-trained heads predict x on 1%"}}
    )
    assert "looked degenerate (the co-trained heads predict x on 1%)" in text and "labels alone" in text


def test_wilson_interval_known_values() -> None:
    """8 of 10: the Wilson 95 % interval is 0.490-0.943 (textbook value); 0 of 0 says nothing."""
    from unisal.app.rounds import wilson_interval

    low, high = wilson_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and 0.69 < low < 0.73


def test_the_pooled_estimate_counts_every_image_once() -> None:
    """Folds of 3/4 and 1/2 right: 4 of 6 pooled (0.667), not the folds' mean 0.625."""
    from unisal.estimate import pooled_estimate, wilson_interval

    accuracy, low, high = pooled_estimate([{"correct": 3.0, "n": 4.0}, {"correct": 1.0, "n": 2.0}])
    assert accuracy == pytest.approx(4 / 6) and (low, high) == wilson_interval(4, 6)
