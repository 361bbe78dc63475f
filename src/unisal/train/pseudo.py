"""Pseudo-labels for cross pseudo supervision, robust to few and imbalanced labels (issue 15).

UniSAL's network A learns network B's confident argmax on unlabelled images and vice versa. With
few labels of a rare class, B's confident argmax rarely says that class, A learns to say it even
less, and the pair can drift into never predicting it (a collapse: docs/benchmark-lc25000-lung.md).
A :class:`PseudoLabeller` keeps running statistics of one teacher's predictions on unlabelled
images and applies any of these published corrections before the argmax:

- ``align`` -- distribution alignment (Berthelot et al., "ReMixMatch", ICLR 2020, sec. 3.2): the
  teacher's probabilities times ``p_target / p_model``, renormalised, where ``p_model`` is the
  running mean of its predictions and ``p_target`` the class distribution of the labels.
- ``debias`` -- debiased pseudo-labels by logit adjustment (Wang et al., "Debiased Learning from
  Naturally Imbalanced Pseudo-Labels" (DebiasPL), CVPR 2022, eq. 4; Menon et al., "Long-tail
  learning via logit adjustment", ICLR 2021): ``argmax(logits - strength * log p_model)``. The
  paper's second part, its adaptive marginal loss, is not implemented.
- ``freematch`` thresholds (Wang et al., "FreeMatch: Self-adaptive Thresholding for
  Semi-supervised Learning", ICLR 2023, eqs. 6-9): instead of the fixed ``tau``, class ``c`` is
  confident above ``tau_t * p_tilde(c) / max(p_tilde)``, where ``tau_t`` is the running mean of the
  teacher's top probability (starting at 1/C) and ``p_tilde`` the running mean of its probability
  vector (starting uniform): a class the teacher is still shy of gets a lower bar.

Every running mean is an exponential moving average with ``momentum`` per step; all of it is
``torch.no_grad`` bookkeeping on (B, C) tensors.
"""

from __future__ import annotations

import torch

from unisal.config import PSEUDO_LABELS, THRESHOLDS


def aligned_probabilities(probs: torch.Tensor, p_model: torch.Tensor, p_target: torch.Tensor) -> torch.Tensor:
    """ReMixMatch's distribution alignment: ``probs * p_target / p_model``, rows renormalised.

    Args:
        probs: (B, C) probabilities; p_model, p_target: (C,) distributions (positive).
    """
    scaled = probs * (p_target / p_model.clamp_min(1e-6))[None, :]
    return scaled / scaled.sum(dim=1, keepdim=True).clamp_min(1e-12)


def debiased_probabilities(logits: torch.Tensor, p_model: torch.Tensor, strength: float) -> torch.Tensor:
    """DebiasPL's logit adjustment: ``softmax(logits - strength * log p_model)``, (B, C) -> (B, C)."""
    return (logits - strength * torch.log(p_model.clamp_min(1e-6))[None, :]).softmax(dim=1)


def freematch_thresholds(tau_global: float, p_tilde: torch.Tensor) -> torch.Tensor:
    """FreeMatch's self-adaptive class thresholds ``tau_global * p_tilde / max(p_tilde)``, (C,)."""
    return tau_global * p_tilde / p_tilde.max().clamp_min(1e-12)


class PseudoLabeller:
    """Hard pseudo-labels and their confidence mask from one teacher's logits, step after step.

    Args:
        n_classes: C.
        tau: the fixed confidence threshold (``thresholds='fixed'``).
        how: ``plain`` | ``align`` | ``debias`` (see the module docstring).
        thresholds: ``fixed`` | ``freematch``.
        p_target: (C,) the class distribution ``align`` pulls towards (the labels' classes).
        momentum: per-step decay of the running means.
        strength: ``debias``'s lambda.
    """

    def __init__(
        self,
        n_classes: int,
        tau: float,
        *,
        how: str = "plain",
        thresholds: str = "fixed",
        p_target: torch.Tensor | None = None,
        momentum: float = 0.99,
        strength: float = 1.0,
    ):
        if how not in PSEUDO_LABELS or thresholds not in THRESHOLDS:
            raise ValueError(f"unknown pseudo-labelling {how!r} / thresholds {thresholds!r}")
        self.tau, self.how, self.thresholds = tau, how, thresholds
        self.momentum, self.strength = momentum, strength
        uniform = torch.full((n_classes,), 1.0 / n_classes)
        self.p_target = uniform if p_target is None else p_target.float() / p_target.float().sum()
        self.p_model = uniform.clone()  # running mean of the teacher's probabilities (FreeMatch's p_tilde)
        self.tau_global = 1.0 / n_classes  # FreeMatch's running mean of the top probability

    @torch.no_grad()
    def __call__(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels (B,) int64 and mask (B,) bool for teacher ``logits`` (B, C); updates the statistics."""
        logits = logits.detach().float()
        probs = logits.softmax(dim=1)
        if len(probs):
            m = self.momentum
            self.p_model = m * self.p_model.to(probs.device) + (1 - m) * probs.mean(dim=0)
            self.tau_global = m * self.tau_global + (1 - m) * float(probs.max(dim=1).values.mean())
        if self.how == "align":
            probs = aligned_probabilities(probs, self.p_model, self.p_target.to(probs.device))
        elif self.how == "debias":
            probs = debiased_probabilities(logits, self.p_model, self.strength)
        confidence, labels = probs.max(dim=1)
        if self.thresholds == "freematch":
            return labels, confidence > freematch_thresholds(self.tau_global, self.p_model)[labels]
        return labels, confidence > self.tau
