"""UniSAL losses as pure functions of tensors."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def confident_pseudo_labels(logits: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard pseudo labels and the mask of predictions whose max softmax exceeds ``tau``.

    Args:
        logits: (N, C).
        tau: confidence threshold in (0, 1).

    Returns:
        labels (N,) int64 and mask (N,) bool.
    """
    probs = logits.detach().float().softmax(dim=1)
    confidence, labels = probs.max(dim=1)
    return labels, confidence > tau


def cross_pseudo_supervision(
    logits_a: torch.Tensor, logits_b: torch.Tensor, tau: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Each network learns the other's confident argmax on unlabelled images.

    Args:
        logits_a: network A on its view of the unlabelled batch, (N, C).
        logits_b: network B on its view of the same images, (N, C).
        tau: confidence threshold.

    Returns:
        The loss CE(a, argmax b)[conf b > tau] + CE(b, argmax a)[conf a > tau], each term averaged
        over the whole unlabelled batch (masked rows count as zero, as in FixMatch/USB, so the
        loss grows with the number of confident images), and the masks/labels used.
    """
    labels_a, mask_a = confident_pseudo_labels(logits_a, tau)
    labels_b, mask_b = confident_pseudo_labels(logits_b, tau)
    loss = pseudo_supervision(logits_a, labels_b, mask_b) + pseudo_supervision(logits_b, labels_a, mask_a)
    return loss, {"labels_a": labels_a, "mask_a": mask_a, "labels_b": labels_b, "mask_b": mask_b}


def pseudo_supervision(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``mean_i mask_i * CE(logits_i, labels_i)`` over all B rows (masked rows count as zero).

    Args:
        logits: the student's logits (B, C); labels: the teacher's pseudo-labels (B,); mask: (B,) bool.
    """
    if not len(logits):
        return logits.sum() * 0.0
    return (F.cross_entropy(logits, labels, reduction="none") * mask).mean()


def classwise_contrastive_loss(
    z1: torch.Tensor, z2: torch.Tensor, classes: torch.Tensor, anchors: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Pseudo-label-guided class-wise contrastive loss.

    For anchor ``i`` the positive is the same image seen by the other network,
    ``pos = exp(cos(z1_i, z2_i) / T)``; the negatives are the anchors ``j != i`` of another
    (pseudo-)class, compared within each view: ``exp(cos(z1_i, z1_j) / T)`` and
    ``exp(cos(z2_i, z2_j) / T)``, both summed into one denominator as in the reference code.
    The loss of an anchor is ``-log(pos / (pos + sum neg))``, averaged over the anchors that
    have at least one negative (zero when none has).

    Args:
        z1: embeddings from network 1 on view 1, (B, D); need not be normalised.
        z2: embeddings from network 2 on view 2, (B, D).
        classes: (pseudo-)class of each row, (B,) int64; ignored where ``anchors`` is false.
        anchors: (B,) bool, labelled images and unlabelled ones both networks agree on confidently.
        temperature: T > 0.
    """
    z1 = F.normalize(z1.float(), dim=1)
    z2 = F.normalize(z2.float(), dim=1)
    positive = (z1 * z2).sum(dim=1) / temperature  # (B,)
    pair = anchors[:, None] & anchors[None, :] & (classes[:, None] != classes[None, :])  # (B, B)
    has_negative = pair.any(dim=1)  # never true on the diagonal: a class always equals itself
    if not bool(has_negative.any()):
        return z1.sum() * 0.0
    negatives = [((z @ z.T) / temperature).masked_fill(~pair, -math.inf) for z in (z1, z2)]
    logits = torch.cat([positive[:, None], *negatives], dim=1)  # (B, 1 + 2B)
    per_anchor = torch.logsumexp(logits, dim=1) - positive
    return per_anchor[has_negative].mean()


def sigmoid_rampup(step: int, rampup_steps: int) -> float:
    """exp(-5 (1 - t)^2) for t = step / rampup_steps in [0, 1] (Laine & Aila; Mean Teacher)."""
    if rampup_steps <= 0:
        return 1.0
    t = min(max(step, 0), rampup_steps) / rampup_steps
    return float(math.exp(-5.0 * (1.0 - t) ** 2))
