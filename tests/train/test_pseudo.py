"""Robust pseudo-labels (issue 15): each correction against its formula, by hand."""

from __future__ import annotations

import math

import pytest
import torch

from unisal.train.losses import confident_pseudo_labels, cross_pseudo_supervision, pseudo_supervision
from unisal.train.pseudo import (
    PseudoLabeller,
    aligned_probabilities,
    debiased_probabilities,
    freematch_thresholds,
)


def test_distribution_alignment_scales_by_target_over_model_and_renormalises() -> None:
    """[0.6, 0.4] with a model that over-predicts class 0 (0.8 vs 0.2) and a uniform target:
    0.6 * 0.5/0.8 = 0.375 and 0.4 * 0.5/0.2 = 1.0, renormalised to 0.2727 / 0.7273."""
    probs = torch.tensor([[0.6, 0.4]])
    out = aligned_probabilities(probs, torch.tensor([0.8, 0.2]), torch.tensor([0.5, 0.5]))
    assert out[0].tolist() == pytest.approx([0.375 / 1.375, 1.0 / 1.375])


def test_debiasing_subtracts_the_log_of_the_model_distribution() -> None:
    """Logits [1, 0] with p_model [0.9, 0.1]: adjusted logits 1 - log 0.9 and 0 - log 0.1, so the
    rare class wins (2.303 > 1.105); strength 0 leaves the softmax as it was."""
    logits = torch.tensor([[1.0, 0.0]])
    p_model = torch.tensor([0.9, 0.1])
    out = debiased_probabilities(logits, p_model, 1.0)
    expected = torch.tensor([1 - math.log(0.9), -math.log(0.1)]).softmax(0)
    assert out[0].tolist() == pytest.approx(expected.tolist())
    assert int(out.argmax()) == 1
    assert debiased_probabilities(logits, p_model, 0.0)[0].tolist() == pytest.approx(
        logits.softmax(1)[0].tolist()
    )


def test_freematch_thresholds_scale_the_global_one_by_the_normalised_class_means() -> None:
    assert freematch_thresholds(0.8, torch.tensor([0.5, 0.25, 0.25])).tolist() == pytest.approx(
        [0.8, 0.4, 0.4]
    )


def test_the_plain_labeller_is_the_confident_argmax() -> None:
    logits = torch.tensor([[3.0, 0.0, 0.0], [0.1, 0.0, 0.2], [0.0, 0.0, 4.0]])
    labels, mask = PseudoLabeller(3, 0.7)(logits)
    want_labels, want_mask = confident_pseudo_labels(logits, 0.7)
    assert labels.tolist() == want_labels.tolist() and mask.tolist() == want_mask.tolist() == [
        True,
        False,
        True,
    ]


def test_the_labeller_tracks_the_teacher_and_lifts_a_class_it_is_shy_of() -> None:
    """A teacher that leans to class 0 on every row: the running mean moves towards its
    predictions; debiased, a row it calls 0 by a small margin becomes class 1."""
    lean = torch.tensor([[1.0, 0.0]]).repeat(50, 1)
    labeller = PseudoLabeller(2, 0.5, how="debias", momentum=0.9)
    for _ in range(30):
        labeller(lean)
    assert float(labeller.p_model[0]) == pytest.approx(float(lean.softmax(1)[0, 0]), abs=0.03)
    labels, _ = labeller(torch.tensor([[0.5, 0.0]]))
    assert labels.tolist() == [1]
    plain, _ = PseudoLabeller(2, 0.5)(torch.tensor([[0.5, 0.0]]))
    assert plain.tolist() == [0]


def test_freematch_starts_permissive_and_rises_with_the_teacher_confidence() -> None:
    """The global threshold starts at 1/C: a 0.55-confident row is kept at first; after many
    very confident batches the threshold is near their confidence and the row is masked."""
    labeller = PseudoLabeller(2, 0.95, thresholds="freematch", momentum=0.5)
    row = torch.tensor([[0.2, 0.0]])  # softmax 0.55
    _, mask = labeller(row)
    assert mask.tolist() == [True]
    sure = torch.tensor([[6.0, 0.0], [0.0, 6.0]])
    for _ in range(20):
        labeller(sure)
    assert labeller.tau_global == pytest.approx(float(sure.softmax(1).max(1).values.mean()), abs=0.01)
    _, mask = labeller(row)
    assert mask.tolist() == [False]


def test_pseudo_supervision_averages_over_every_row_and_makes_cps() -> None:
    logits_a = torch.tensor([[2.0, 0.0], [0.0, 0.1]])
    logits_b = torch.tensor([[3.0, 0.0], [0.0, 3.0]])
    labels = torch.tensor([0, 1])
    mask = torch.tensor([True, False])
    assert float(pseudo_supervision(logits_a, labels, mask)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits_a[:1], labels[:1])) / 2
    )
    loss, masks = cross_pseudo_supervision(logits_a, logits_b, 0.7)
    by_hand = pseudo_supervision(logits_a, masks["labels_b"], masks["mask_b"]) + pseudo_supervision(
        logits_b, masks["labels_a"], masks["mask_a"]
    )
    assert float(loss) == pytest.approx(float(by_hand))
    assert (
        float(
            pseudo_supervision(
                torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.bool)
            )
        )
        == 0.0
    )


def test_an_unknown_correction_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown pseudo-labelling"):
        PseudoLabeller(2, 0.7, how="magic")
