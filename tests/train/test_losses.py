"""Losses: the vectorised contrastive loss against its spec, and the pseudo-label pieces by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unisal.train.losses import (
    classwise_contrastive_loss,
    confident_pseudo_labels,
    cross_pseudo_supervision,
    sigmoid_rampup,
)


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum() / (a.norm() * b.norm())


def _negatives(i: int, classes: torch.Tensor, anchors: torch.Tensor, every_row: bool = False) -> list[int]:
    """Rows j != i of another class; they must be anchors (unless ``every_row``, a wrong variant)."""
    return [
        j for j in range(len(classes)) if j != i and (every_row or anchors[j]) and classes[j] != classes[i]
    ]


def naive_contrastive(
    z1: torch.Tensor,
    z2: torch.Tensor,
    classes: torch.Tensor,
    anchors: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """The spec, one anchor and one negative at a time (deliberately slow and literal).

    As in the authors' reference code (HiLab-git/UniSAL train_unisal.py): ONE term per anchor i,
    pos_i = exp(cos(z1_i, z2_i) / T), whose single denominator sums the negatives of both views,
    neg_i = sum over anchors j != i of another class of exp(cos(z1_i, z1_j) / T) + exp(cos(z2_i, z2_j) / T).
    The loss is the mean of -log(pos_i / (pos_i + neg_i)) over the anchors with a negative,
    and 0 (still in the graph) when no anchor has one.
    """
    terms = []
    for i in range(len(z1)):
        if not anchors[i]:
            continue
        negatives = _negatives(i, classes, anchors)
        if not negatives:
            continue
        pos = torch.exp(_cos(z1[i], z2[i]) / temperature)
        neg = 0.0
        for j in negatives:
            neg = neg + torch.exp(_cos(z1[i], z1[j]) / temperature)  # view 1
            neg = neg + torch.exp(_cos(z2[i], z2[j]) / temperature)  # view 2, same denominator
        terms.append(-torch.log(pos / (pos + neg)))
    if not terms:
        return z1.sum() * 0.0
    return torch.stack(terms).mean()


# Deliberately wrong implementations: the spec and the vectorised loss must both tell them apart.


def wrong_per_view(z1, z2, classes, anchors, temperature):
    """The previous definition: one term per anchor PER VIEW, each view's negatives in its own
    denominator, averaged over both views."""
    terms = []
    for zv in (z1, z2):
        for i in range(len(z1)):
            negatives = _negatives(i, classes, anchors)
            if not anchors[i] or not negatives:
                continue
            pos = torch.exp(_cos(z1[i], z2[i]) / temperature)
            neg = sum(torch.exp(_cos(zv[i], zv[j]) / temperature) for j in negatives)
            terms.append(-torch.log(pos / (pos + neg)))
    return torch.stack(terms).mean()


def wrong_cross_view(z1, z2, classes, anchors, temperature):
    """Negatives compared ACROSS the views, cos(z1_i, z2_j) and cos(z2_i, z1_j)."""
    terms = []
    for i in range(len(z1)):
        negatives = _negatives(i, classes, anchors)
        if not anchors[i] or not negatives:
            continue
        pos = torch.exp(_cos(z1[i], z2[i]) / temperature)
        neg = sum(
            torch.exp(_cos(z1[i], z2[j]) / temperature) + torch.exp(_cos(z2[i], z1[j]) / temperature)
            for j in negatives
        )
        terms.append(-torch.log(pos / (pos + neg)))
    return torch.stack(terms).mean()


def wrong_non_anchor_negatives(z1, z2, classes, anchors, temperature):
    """Non-anchor rows (unconfident pseudo-labels) of another class also used as negatives."""
    terms = []
    for i in range(len(z1)):
        negatives = _negatives(i, classes, anchors, every_row=True)
        if not anchors[i] or not negatives:
            continue
        pos = torch.exp(_cos(z1[i], z2[i]) / temperature)
        neg = sum(
            torch.exp(_cos(z1[i], z1[j]) / temperature) + torch.exp(_cos(z2[i], z2[j]) / temperature)
            for j in negatives
        )
        terms.append(-torch.log(pos / (pos + neg)))
    return torch.stack(terms).mean()


def _random_case(seed: int, batch: int, n_classes: int, anchor_rate: float, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(batch, 16, generator=g, dtype=dtype)
    z2 = z1 + 0.7 * torch.randn(batch, 16, generator=g, dtype=dtype)  # related views
    classes = torch.randint(n_classes, (batch,), generator=g)
    anchors = torch.rand(batch, generator=g) < anchor_rate
    return z1, z2, classes, anchors


CASES = [
    # seed, batch, classes, anchor rate, temperature
    (0, 2, 2, 1.0, 0.15),
    (1, 7, 3, 0.5, 0.15),
    (2, 7, 2, 1.0, 0.5),
    (3, 7, 4, 0.0, 0.15),  # no anchors
    (4, 16, 5, 0.6, 1.0),
    (5, 64, 8, 0.5, 0.15),
    (6, 64, 3, 1.0, 0.07),
]


@pytest.mark.parametrize(("seed", "batch", "n_classes", "rate", "temperature"), CASES)
def test_contrastive_matches_naive_loop(seed, batch, n_classes, rate, temperature):
    z1, z2, classes, anchors = _random_case(seed, batch, n_classes, rate)
    expected = naive_contrastive(z1, z2, classes, anchors, temperature)
    got = classwise_contrastive_loss(z1, z2, classes, anchors, temperature)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("seed", "batch", "n_classes", "rate", "temperature"), CASES)
def test_contrastive_gradients_match_naive_loop(seed, batch, n_classes, rate, temperature):
    z1, z2, classes, anchors = _random_case(seed, batch, n_classes, rate, dtype=torch.float64)
    z1_naive, z2_naive = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    z1_fast, z2_fast = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    naive_contrastive(z1_naive, z2_naive, classes, anchors, temperature).backward()
    classwise_contrastive_loss(z1_fast, z2_fast, classes, anchors, temperature).backward()
    # the loss computes in float32, so compare against the float64 spec at float32 precision
    torch.testing.assert_close(z1_fast.grad, z1_naive.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(z2_fast.grad, z2_naive.grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("wrong", [wrong_per_view, wrong_cross_view, wrong_non_anchor_negatives])
def test_contrastive_rejects_wrong_implementations(wrong):
    # the comparison above is only meaningful if a plausible mistake would fail it
    z1, z2, classes, anchors = _random_case(7, 16, 3, 0.6)
    assert not anchors.all()  # so the non-anchor variant really differs
    spec = float(naive_contrastive(z1, z2, classes, anchors, 0.15))
    got = float(classwise_contrastive_loss(z1, z2, classes, anchors, 0.15))
    bad = float(wrong(z1, z2, classes, anchors, 0.15))
    assert got == pytest.approx(spec, abs=1e-5)
    assert abs(bad - spec) > 1e-2


def test_contrastive_two_orthogonal_anchors_by_hand():
    e = torch.eye(3)
    z = torch.stack([e[0], e[1], e[2]])
    classes = torch.tensor([0, 1, 1])
    anchors = torch.tensor([True, True, False])  # row 2 is no anchor, so it is no negative either
    loss = classwise_contrastive_loss(z, z.clone(), classes, anchors, temperature=1.0)
    # each anchor: pos = exp(cos 1 / T) = e^{1/T}; its one negative appears once per view with
    # cos 0, so the denominator holds 2 * e^0 = 2: loss = -log(e^{1/T} / (e^{1/T} + 2))
    # = log(1 + 2 e^{-1/T}), the same for both anchors. T = 1: log(1 + 2/e) ~= 0.551445
    assert float(loss) == pytest.approx(math.log(1 + 2 / math.e), abs=1e-6)
    assert float(loss) == pytest.approx(0.551445, abs=1e-6)
    loss_half = classwise_contrastive_loss(z, z.clone(), classes, anchors, temperature=0.5)
    # T = 0.5: log(1 + 2 e^{-2}) ~= 0.239545
    assert float(loss_half) == pytest.approx(math.log(1 + 2 * math.exp(-2.0)), abs=1e-6)
    assert float(loss_half) == pytest.approx(0.239545, abs=1e-6)


def test_contrastive_counts_only_other_class_anchors_as_negatives():
    z = torch.eye(3)
    classes = torch.tensor([0, 1, 0])
    anchors = torch.ones(3, dtype=torch.bool)
    loss = classwise_contrastive_loss(z, z.clone(), classes, anchors, temperature=1.0)
    # T = 1, every pos = e and every cos between rows is 0 (each negative adds e^0 = 1 per view).
    # Anchors 0 and 2 have one negative (row 1): denominator e + 2 -> log(1 + 2/e) each.
    # Anchor 1 has two (rows 0 and 2): denominator e + 4 -> log(1 + 4/e).
    # Mean over 3 anchors: (2 log(1 + 2/e) + log(1 + 4/e)) / 3 ~= 0.669241
    expected = (2 * math.log(1 + 2 / math.e) + math.log(1 + 4 / math.e)) / 3
    assert float(loss) == pytest.approx(expected, abs=1e-6)
    assert float(loss) == pytest.approx(0.669241, abs=1e-6)


def test_contrastive_sums_both_views_into_one_denominator():
    # views disagree on the negative: in view 1 the anchors are orthogonal (cos 0), in view 2
    # they coincide (cos 1). z1 = (e0, e1), z2 = (e0, e0), classes 0 and 1, T = 1.
    e = torch.eye(2)
    z1, z2 = torch.stack([e[0], e[1]]), torch.stack([e[0], e[0]])
    classes, anchors = torch.tensor([0, 1]), torch.ones(2, dtype=torch.bool)
    loss = classwise_contrastive_loss(z1, z2, classes, anchors, temperature=1.0)
    # anchor 0: pos = e^{cos(e0, e0)} = e, neg = e^0 + e^1 = 1 + e -> log((2e + 1) / e) = log(2 + 1/e)
    # anchor 1: pos = e^{cos(e1, e0)} = 1, neg = 1 + e            -> log(2 + e)
    # mean: (log(2 + 1/e) + log(2 + e)) / 2 ~= 1.206720
    expected = (math.log(2 + 1 / math.e) + math.log(2 + math.e)) / 2
    assert float(loss) == pytest.approx(expected, abs=1e-6)
    assert float(loss) == pytest.approx(1.206720, abs=1e-6)
    # the previous per-view average would give (log(1 + 1/e) + log 2 + log 2 + log(1 + e)) / 4
    # ~= 0.753204, which this test must reject
    per_view = (math.log(1 + 1 / math.e) + 2 * math.log(2) + math.log(1 + math.e)) / 4
    assert abs(float(loss) - per_view) > 0.1


def test_contrastive_is_zero_for_one_class_or_no_anchor():
    z1, z2, _, _ = _random_case(0, 10, 1, 1.0)
    one_class = torch.zeros(10, dtype=torch.long)
    z1.requires_grad_()
    loss = classwise_contrastive_loss(z1, z2, one_class, torch.ones(10, dtype=torch.bool), 0.15)
    assert float(loss.detach()) == 0.0
    loss.backward()  # the zero still belongs to the graph, so a training step can run on it
    assert torch.count_nonzero(z1.grad) == 0
    mixed = torch.arange(10) % 3
    none = classwise_contrastive_loss(z1, z2, mixed, torch.zeros(10, dtype=torch.bool), 0.15)
    assert float(none.detach()) == 0.0


def test_contrastive_ignores_classes_of_non_anchors_and_embedding_scale():
    z1, z2, classes, anchors = _random_case(11, 12, 3, 0.5)
    base = classwise_contrastive_loss(z1, z2, classes, anchors, 0.15)
    relabelled = torch.where(anchors, classes, (classes + 1) % 3)
    assert float(classwise_contrastive_loss(z1, z2, relabelled, anchors, 0.15)) == pytest.approx(
        float(base), abs=1e-6
    )
    scaled = classwise_contrastive_loss(3.0 * z1, 0.2 * z2, classes, anchors, 0.15)
    assert float(scaled) == pytest.approx(float(base), abs=1e-5)


def test_contrastive_decreases_as_positives_align():
    # two anchors of different classes; view 2 rotates each away from view 1 into its own axis,
    # so pos = exp(cos(theta) / T) while the negative stays orthogonal in both views (cos 0,
    # e^0 = 1 per view, 2 in the denominator): the loss is exactly log(1 + 2 exp(-cos(theta) / T)).
    # T = 0.5, theta = 1.5, 1.0, 0.5, 0.0: ~= 1.006554, 0.518068, 0.296957, 0.239545
    e = torch.eye(4)
    z1 = torch.stack([e[0], e[1]])
    classes, anchors = torch.tensor([0, 1]), torch.ones(2, dtype=torch.bool)
    losses = []
    for theta in (1.5, 1.0, 0.5, 0.0):
        c, s = math.cos(theta), math.sin(theta)
        z2 = torch.stack([c * e[0] + s * e[2], c * e[1] + s * e[3]])
        loss = float(classwise_contrastive_loss(z1, z2, classes, anchors, temperature=0.5))
        assert loss == pytest.approx(math.log(1 + 2 * math.exp(-c / 0.5)), abs=1e-6)
        losses.append(loss)
    assert all(a > b for a, b in zip(losses, losses[1:], strict=False))


def _logits_of(probs: list[list[float]]) -> torch.Tensor:
    return torch.tensor(probs, dtype=torch.float64).log()


def test_confident_pseudo_labels_threshold_is_strict():
    logits = _logits_of([[0.8, 0.2], [0.6, 0.4], [0.1, 0.9], [0.25, 0.75]])
    labels, mask = confident_pseudo_labels(logits, tau=0.7)
    assert labels.tolist() == [0, 0, 1, 1]
    assert mask.tolist() == [True, False, True, True]
    assert mask.dtype == torch.bool and labels.dtype == torch.int64
    # softmax of equal logits is exactly 1/C, so these sit exactly on tau and are not confident
    _, at_tau = confident_pseudo_labels(torch.zeros(3, 2), tau=0.5)
    assert at_tau.tolist() == [False, False, False]
    _, at_quarter = confident_pseudo_labels(torch.zeros(2, 4), tau=0.25)
    assert at_quarter.tolist() == [False, False]


def test_confident_pseudo_labels_are_detached():
    logits = torch.randn(5, 3, requires_grad=True)
    labels, mask = confident_pseudo_labels(logits, tau=0.7)
    assert not labels.requires_grad and not mask.requires_grad


def test_cross_pseudo_supervision_uses_the_other_networks_targets():
    # A is confident on sample 0 only (class 0), B on sample 1 only (class 1)
    logits_a = torch.tensor([[3.0, 0.0], [0.2, 0.0]], requires_grad=True)
    logits_b = torch.tensor([[0.0, 0.1], [0.0, 3.0]], requires_grad=True)
    loss, info = cross_pseudo_supervision(logits_a, logits_b, tau=0.7)
    assert info["mask_a"].tolist() == [True, False]
    assert info["mask_b"].tolist() == [False, True]
    assert info["labels_a"].tolist() == [0, 0]
    assert info["labels_b"].tolist() == [1, 1]
    # A learns B's label 1 on sample 1; B learns A's label 0 on sample 0; each mean is over N = 2
    ce_a = math.log(1 + math.exp(0.2))  # -log softmax([0.2, 0])[1]
    ce_b = math.log(1 + math.exp(0.1))  # -log softmax([0, 0.1])[0]
    assert float(loss.detach()) == pytest.approx((ce_a + ce_b) / 2, abs=1e-6)
    loss.backward()
    assert logits_a.grad[0].abs().sum() == 0 and logits_a.grad[1].abs().sum() > 0
    assert logits_b.grad[1].abs().sum() == 0 and logits_b.grad[0].abs().sum() > 0
    # d CE / d logits = softmax - one_hot, halved by the mean over the batch
    expected_a1 = (F.softmax(logits_a[1].detach(), 0) - torch.tensor([0.0, 1.0])) / 2
    torch.testing.assert_close(logits_a.grad[1], expected_a1)
    expected_b0 = (F.softmax(logits_b[0].detach(), 0) - torch.tensor([1.0, 0.0])) / 2
    torch.testing.assert_close(logits_b.grad[0], expected_b0)


def test_cross_pseudo_supervision_is_zero_without_confidence():
    logits_a = torch.zeros(4, 3, requires_grad=True)
    logits_b = torch.tensor([[0.1, 0.0, 0.0]] * 4, requires_grad=True)
    loss, info = cross_pseudo_supervision(logits_a, logits_b, tau=0.7)
    assert float(loss.detach()) == 0.0
    assert not info["mask_a"].any() and not info["mask_b"].any()
    loss.backward()
    assert torch.count_nonzero(logits_a.grad) == 0 and torch.count_nonzero(logits_b.grad) == 0
    empty, _ = cross_pseudo_supervision(torch.zeros(0, 3), torch.zeros(0, 3), tau=0.7)
    assert float(empty) == 0.0


def test_sigmoid_rampup_known_values():
    assert sigmoid_rampup(0, 100) == pytest.approx(math.exp(-5.0))
    assert sigmoid_rampup(50, 100) == pytest.approx(math.exp(-1.25))
    assert sigmoid_rampup(100, 100) == 1.0
    assert sigmoid_rampup(500, 100) == 1.0  # clamped after the ramp
    assert sigmoid_rampup(-5, 100) == pytest.approx(math.exp(-5.0))
    assert sigmoid_rampup(0, 0) == 1.0  # no warm-up: full weight from the first step
    values = [sigmoid_rampup(s, 40) for s in range(41)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False))
