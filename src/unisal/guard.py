"""A guard against degenerate co-trained heads that needs no validation labels (issue 15, item 3).

At the end of a co-training round the learner also has supervised heads trained on the same
labels (the warm start, or a fit for this check). The co-trained heads are judged degenerate,
and the round falls back to the supervised ones, when on a seeded sample of the unlabelled pool
or on the labelled images themselves they show what a collapse looks like
(docs/benchmark-lc25000-lung.md: a class the labels hold pulled into its neighbour):

- **a vanishing class**: a class of the labelled set that the co-trained heads predict on less
  than ``SHARE_RATIO`` of the share the supervised heads give it on the pool sample (where the
  supervised heads give it at least ``MIN_SHARE``);
- **a class they no longer fit**: on the labelled images, the co-trained heads' recall of a class
  more than ``RECALL_GAP`` below the supervised heads' recall of it;
- **a different model**: Cohen's kappa between the two sets of heads' predictions on the pool
  sample below ``MIN_KAPPA``.

Pure functions of logits; the learner (:mod:`unisal.learners.base`) does the predicting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from unisal.diagnostics import class_shares, per_class_recall
from unisal.stopping import agreement_kappa

SHARE_RATIO = 0.5
MIN_SHARE = 0.02
RECALL_GAP = 0.25
MIN_KAPPA = 0.5
POOL_SAMPLE = 2000  # unlabelled images the check predicts on


@dataclass
class GuardVerdict:
    """The check of one round: whether to fall back, why, and the numbers behind it."""

    fallback: bool
    reason: str
    kappa: float  # agreement of the co-trained and supervised heads on the pool sample
    share_ratio_min: float  # min over the labelled classes of co-trained / supervised pool share

    def record(self) -> dict[str, Any]:
        return {
            "guard_fallback": int(self.fallback),
            "guard_reason": self.reason,
            "guard_kappa": round(self.kappa, 6),
            "guard_share_ratio": round(self.share_ratio_min, 6),
        }


def guard_verdict(
    cotrained_pool: np.ndarray,
    supervised_pool: np.ndarray,
    cotrained_labelled: np.ndarray,
    supervised_labelled: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
) -> GuardVerdict:
    """Judge the co-trained heads against the supervised ones.

    Args:
        cotrained_pool, supervised_pool: each set of heads' logits averaged over its networks on
            the pool sample, (N, C).
        cotrained_labelled, supervised_labelled: the same on the labelled images, (L, C).
        labels: the labelled images' classes, (L,).
        class_names: the C class names, for the reason.
    """
    n_classes = len(class_names)
    cot, sup = cotrained_pool.argmax(1), supervised_pool.argmax(1)
    share_cot, share_sup = class_shares(cot, n_classes), class_shares(sup, n_classes)
    held = np.unique(np.asarray(labels, np.int64))
    kappa = agreement_kappa(sup, cot) if len(cot) else 1.0
    reasons = []
    ratios = [float(share_cot[c] / share_sup[c]) for c in held if share_sup[c] >= MIN_SHARE]
    for c in held:
        if share_sup[c] >= MIN_SHARE and share_cot[c] < SHARE_RATIO * share_sup[c]:
            reasons.append(
                f"the co-trained heads predict {class_names[c]} on {share_cot[c]:.1%} of the pool, "
                f"the supervised heads on {share_sup[c]:.1%}"
            )
    recall_cot = per_class_recall(cotrained_labelled.argmax(1), labels, n_classes)
    recall_sup = per_class_recall(supervised_labelled.argmax(1), labels, n_classes)
    for c in held:
        if recall_cot[c] < recall_sup[c] - RECALL_GAP:
            reasons.append(
                f"the co-trained heads recall {recall_cot[c]:.0%} of the labelled {class_names[c]} "
                f"images, the supervised heads {recall_sup[c]:.0%}"
            )
    if kappa < MIN_KAPPA:
        reasons.append(f"the two sets of heads agree little on the pool (kappa {kappa:.2f})")
    return GuardVerdict(
        fallback=bool(reasons),
        reason="; ".join(reasons),
        kappa=float(kappa),
        share_ratio_min=min(ratios) if ratios else 1.0,
    )
