"""Training: UniSAL dual-view co-training, and plain supervised fitting on the same code path.

Every step draws a labelled batch (``_lb``) and, for co-training, an unlabelled batch
(``_ulb``); each image gets two independent views from the inputs (weak augmentations of the
pixels when fine-tuning, randomly drawn cached views with a frozen backbone), view 1 for
network 1 and view 2 for network 2. Model selection keeps the weights with the best
validation accuracy of the networks' averaged logits. Both learners use this loop and
:func:`step_loss`.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from unisal.config import TrainConfig
from unisal.events import Task
from unisal.models.network import NetOutput, UniSALNet
from unisal.train.evaluate import predict
from unisal.train.inputs import NetworkInputs
from unisal.train.losses import (
    classwise_contrastive_loss,
    cross_pseudo_supervision,
    pseudo_supervision,
    sigmoid_rampup,
)
from unisal.train.pseudo import PseudoLabeller


@dataclass
class FitResult:
    best_epoch: int
    best_val_accuracy: float | None  # None without a validation split
    seconds: float
    steps: int
    history: list[dict[str, float]] = field(default_factory=list)
    guard: dict[str, Any] | None = None  # the guard's verdict (unisal.guard), when it ran


class IndexSampler:
    """Endless shuffled passes over ``indices`` (no repeats within a pass)."""

    def __init__(self, indices: np.ndarray, rng: np.random.Generator):
        self.indices = np.asarray(indices)
        self.rng = rng
        self.order = self.rng.permutation(self.indices)
        self.pos = 0

    def next(self, n: int) -> np.ndarray:
        out = []
        while n > 0:
            if self.pos >= len(self.order):
                self.order, self.pos = self.rng.permutation(self.indices), 0
            take = self.order[self.pos : self.pos + n]
            self.pos += len(take)
            n -= len(take)
            out.append(take)
        return np.concatenate(out)


class BalancedSampler:
    """Endless class-balanced draws: each class equally often (the classes in a shuffled cycle),
    and within a class its images in shuffled passes (no repeats within a pass).

    Args:
        indices: catalogue indices, (L,); ``labels`` their classes, (L,).
    """

    def __init__(self, indices: np.ndarray, labels: np.ndarray, rng: np.random.Generator):
        indices, labels = np.asarray(indices), np.asarray(labels)
        self.classes = np.unique(labels)
        self.samplers = [IndexSampler(indices[labels == c], rng) for c in self.classes]
        self.cycle = IndexSampler(np.arange(len(self.classes)), rng)
        self.rng = rng

    def next(self, n: int) -> np.ndarray:
        slots = self.cycle.next(n)
        counts = np.bincount(slots, minlength=len(self.classes))
        picks = np.concatenate([s.next(int(k)) for s, k in zip(self.samplers, counts, strict=True) if k])
        return self.rng.permutation(picks)


def labelled_sampler(
    indices: np.ndarray, labels: np.ndarray, how: str, rng: np.random.Generator
) -> IndexSampler | BalancedSampler:
    """The labelled batches' sampler: ``uniform`` over images or ``balanced`` over classes."""
    return BalancedSampler(indices, labels, rng) if how == "balanced" else IndexSampler(indices, rng)


def lr_at(step: int, total_steps: int, base_lr: float, decay_at: float) -> float:
    """Step decay: ``base_lr`` until ``decay_at`` of training, then a tenth of it."""
    return base_lr * (0.1 if step >= int(total_steps * decay_at) else 1.0)


def make_optimiser(params: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum (the reference code) or AdamW (decoupled weight decay)."""
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def batch_sizes(cfg: TrainConfig, semi: bool, limit: int | None = None) -> tuple[int, int]:
    """Labelled and unlabelled images per step: ``ulb_ratio`` unlabelled per labelled one.

    A batch larger than ``limit`` (all the training images there are, labelled and not) is
    scaled down to it, keeping the ratio; a smaller one is kept, the labelled images repeating
    within a batch when there are few of them (each time with another augmentation).
    """
    size = cfg.batch_size if limit is None else max(2 if semi else 1, min(cfg.batch_size, limit))
    if not semi:
        return size, 0
    n_lb = max(1, int(size / (1.0 + cfg.ulb_ratio)))
    return n_lb, max(1, size - n_lb)


def step_loss(
    outs: list[NetOutput],
    y_lb: torch.Tensor,
    cfg: TrainConfig,
    weight_pl: float,
    *,
    labellers: list[PseudoLabeller] | None = None,
    teacher_logits: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of one step, and its parts for the log.

    Args:
        outs: one output per network on its own view of the batch; the first ``len(y_lb)``
            rows are labelled, the rest unlabelled (absent in supervised training).
        y_lb: classes of the labelled rows, (L,).
        cfg: loss settings (tau, temperature, lambda_con).
        weight_pl: current weight of cross pseudo supervision (ramped up).
        labellers: per network, what turns its logits into the pseudo-labels the other network
            learns (:class:`unisal.train.pseudo.PseudoLabeller`); None: the confident argmax at
            ``cfg.tau``, UniSAL as published.
        teacher_logits: per network, the logits its pseudo-labels come from on the unlabelled
            rows, (U, C) each (an EMA teacher); None: the network's own.

    Returns:
        ``sum_k CE_k(lb)``, plus, for two networks with unlabelled rows,
        ``weight_pl * CPS + lambda_con * L_con``; and the float values of each part.
    """
    n_lb = len(y_lb)
    n_classes = outs[0].logits.shape[1]
    loss_ce = torch.stack([F.cross_entropy(o.logits[:n_lb].float(), y_lb) for o in outs]).sum()
    loss = loss_ce
    parts = {"ce": float(loss_ce.detach())}
    # What explains a collapse (unisal.diagnostics): the labelled batches' classes, and below each
    # network's confident pseudo-labels per class (as shares of the unlabelled rows).
    parts |= {f"lb_{c}": float(v) for c, v in enumerate(torch.bincount(y_lb, minlength=n_classes) / n_lb)}
    if len(outs) == 2 and outs[0].logits.shape[0] > n_lb:
        o1, o2 = outs
        s1, s2 = o1.logits[n_lb:].float(), o2.logits[n_lb:].float()
        if labellers is None and teacher_logits is None:
            loss_pl, masks = cross_pseudo_supervision(s1, s2, cfg.tau)
        else:
            t1, t2 = teacher_logits or [s1, s2]
            la, lb = labellers or [PseudoLabeller(n_classes, cfg.tau) for _ in range(2)]
            labels_a, mask_a = la(t1)  # what network 1 teaches network 2, and the reverse
            labels_b, mask_b = lb(t2)
            loss_pl = pseudo_supervision(s1, labels_b, mask_b) + pseudo_supervision(s2, labels_a, mask_a)
            masks = {"labels_a": labels_a, "mask_a": mask_a, "labels_b": labels_b, "mask_b": mask_b}
        # Contrastive anchors: labelled rows, and unlabelled rows both networks agree on confidently.
        agree = masks["mask_a"] & masks["mask_b"] & (masks["labels_a"] == masks["labels_b"])
        classes = torch.cat([y_lb, masks["labels_a"]])
        anchors = torch.cat([torch.ones_like(y_lb, dtype=torch.bool), agree])
        loss_con = classwise_contrastive_loss(o1.embedding, o2.embedding, classes, anchors, cfg.temperature)
        loss = loss + weight_pl * loss_pl + cfg.lambda_con * loss_con
        parts |= {
            "pl": float(loss_pl.detach()),
            "con": float(loss_con.detach()),
            "confident": float((masks["mask_a"].float().mean() + masks["mask_b"].float().mean()) / 2),
            "agree": float(agree.float().mean()),
        }
        n_ulb = len(masks["labels_a"])
        for net in ("a", "b"):
            confident = masks[f"labels_{net}"][masks[f"mask_{net}"]]
            shares = torch.bincount(confident, minlength=n_classes) / n_ulb
            parts |= {f"mask_{net}": float(masks[f"mask_{net}"].float().mean())}
            parts |= {f"pl_{net}_{c}": float(v) for c, v in enumerate(shares)}
    return loss, parts | {"loss": float(loss.detach())}


def robust_parts(
    nets: list[UniSALNet], y_lb: np.ndarray, cfg: TrainConfig
) -> tuple[list[PseudoLabeller] | None, list[UniSALNet] | None]:
    """The pseudo-labellers and EMA teachers co-training uses, or None where ``cfg`` asks for
    UniSAL's plain confident argmax from the other network itself (then the loss is unchanged)."""
    labellers = None
    if cfg.pseudo_labels != "plain" or cfg.thresholds != "fixed":
        n_classes = int(getattr(nets[0], "num_classes", 0)) or int(np.max(y_lb)) + 1
        counts = torch.bincount(torch.as_tensor(np.asarray(y_lb), dtype=torch.int64), minlength=n_classes)
        labellers = [
            PseudoLabeller(
                n_classes,
                cfg.tau,
                how=cfg.pseudo_labels,
                thresholds=cfg.thresholds,
                p_target=counts.float() + 1.0,  # the labels' classes, Laplace-smoothed: none is ruled out
                momentum=cfg.pl_momentum,
                strength=cfg.debias_strength,
            )
            for _ in nets
        ]
    teachers = None
    if cfg.ema_teacher > 0:
        teachers = [copy.deepcopy(net).eval().requires_grad_(False) for net in nets]
    return labellers, teachers


@torch.no_grad()
def ema_update(teachers: list[UniSALNet], students: list[UniSALNet], decay: float) -> None:
    """Each teacher's weights ``decay * teacher + (1 - decay) * student``; buffers copied."""
    for teacher, student in zip(teachers, students, strict=True):
        for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
            t.lerp_(s.detach(), 1.0 - decay)
        for tb, sb in zip(teacher.buffers(), student.buffers(), strict=True):
            tb.copy_(sb)


EMPTY = np.zeros(0, np.int64)


@dataclass(frozen=True)
class TrainingSets:
    """The images one fit sees, as absolute catalogue indices.

    Attributes:
        idx_lb, y_lb: labelled images (L,) and their classes (L,).
        idx_ulb: unlabelled images (U,) for cross pseudo supervision; empty: supervised training.
        idx_val, y_val: validation images (V,) for model selection and their classes; empty: the
            last epoch is kept.
    """

    idx_lb: np.ndarray
    y_lb: np.ndarray
    idx_ulb: np.ndarray = field(default_factory=lambda: EMPTY)
    idx_val: np.ndarray = field(default_factory=lambda: EMPTY)
    y_val: np.ndarray = field(default_factory=lambda: EMPTY)

    @property
    def n_images(self) -> int:
        """Training images there are in all (labelled and unlabelled): what a batch may hold."""
        return len(self.idx_lb) + len(self.idx_ulb)

    def labelled_only(self) -> TrainingSets:
        """The same sets without the unlabelled images (a supervised fit)."""
        return replace(self, idx_ulb=EMPTY)


def fit(
    nets: list[UniSALNet],
    inputs: NetworkInputs,
    sets: TrainingSets,
    cfg: TrainConfig,
    device: torch.device,
    *,
    seed: int,
    batch_limit: int | None = None,
) -> FitResult:
    """Train ``nets`` in place and leave the best validation weights loaded.

    Args:
        nets: two networks for UniSAL co-training (``sets`` with unlabelled images), or one or two
            for supervised training (each network gets its own view; the loss sums their CE).
        inputs: where the networks' inputs come from (images or cached features).
        sets: the labelled, unlabelled and validation images.
        cfg: optimisation and loss settings.
        device: where to train.
        seed: seeds batch order, augmentations and nothing else (weights are seeded at build).
        batch_limit: the training images there are in all; a larger batch is scaled down to it.
    """
    idx_lb, y_lb, idx_ulb, idx_val, y_val = sets.idx_lb, sets.y_lb, sets.idx_ulb, sets.idx_val, sets.y_val
    if len(idx_lb) == 0:
        raise ValueError("cannot train without labelled images")
    semi = len(idx_ulb) > 0 and len(nets) == 2
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    label_of = dict(zip(np.asarray(idx_lb).tolist(), np.asarray(y_lb).tolist(), strict=True))
    sampler_lb = labelled_sampler(idx_lb, y_lb, cfg.labelled_sampling, rng)
    sampler_ulb = IndexSampler(idx_ulb, rng) if semi else None
    bs_lb, bs_ulb = batch_sizes(cfg, semi, batch_limit)
    steps_per_epoch = cfg.steps_per_epoch or max(1, math.ceil(len(idx_lb) / bs_lb))
    total = cfg.epochs * steps_per_epoch
    warmup = int(total * cfg.warmup_fraction)

    for net in nets:
        net.to(device)
        if device.type == "cuda":
            net.to(memory_format=torch.channels_last)
    labellers, teachers = robust_parts(nets, y_lb, cfg) if semi else (None, None)
    # CPS grows with the labels: full weight from cps_labels_per_class labels per class on
    n_classes = int(getattr(nets[0], "num_classes", 0)) or int(np.max(y_lb)) + 1
    grow = (
        1.0
        if cfg.cps_labels_per_class is None
        else min(1.0, len(idx_lb) / n_classes / cfg.cps_labels_per_class)
    )
    optimiser = make_optimiser([p for net in nets for p in net.parameters()], cfg)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else nullcontext()

    best: dict[str, Any] = {"acc": -1.0, "epoch": 0, "states": None}
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    with Task("co-training" if semi else "training", total, unit="step") as task:
        step = 0
        for epoch in range(1, cfg.epochs + 1):
            for net in nets:
                net.train()
            sums: dict[str, float] = {}
            for _ in range(steps_per_epoch):
                for group in optimiser.param_groups:
                    group["lr"] = lr_at(step, total, cfg.lr, cfg.lr_decay_at)
                b_lb = sampler_lb.next(bs_lb)
                y = torch.as_tensor([label_of[i] for i in b_lb.tolist()], device=device)
                batch = b_lb if sampler_ulb is None else np.concatenate([b_lb, sampler_ulb.next(bs_ulb)])
                views = inputs.train_views(batch, len(nets), generator, device)
                with autocast:
                    outs = [net(view) for net, view in zip(nets, views, strict=True)]
                    weight_pl = cfg.lambda_pl * sigmoid_rampup(step, warmup) * grow
                    taught = None
                    if teachers is not None:
                        with torch.no_grad():
                            taught = [
                                t(v[len(b_lb) :]).logits.float() for t, v in zip(teachers, views, strict=True)
                            ]
                    loss, parts = step_loss(
                        outs, y, cfg, weight_pl, labellers=labellers, teacher_logits=taught
                    )
                if not math.isfinite(parts["loss"]):
                    raise FloatingPointError(
                        f"training diverged at step {step} (loss {parts['loss']}); lower the lr"
                    )
                optimiser.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimiser)
                scaler.update()
                if teachers is not None:
                    ema_update(teachers, nets, cfg.ema_teacher)
                for key, value in parts.items():
                    if key != "loss":
                        sums[key] = sums.get(key, 0.0) + value
                step += 1
                task.advance(detail=f"loss={parts['loss']:.3f}")
            record = {"epoch": float(epoch)} | {k: v / steps_per_epoch for k, v in sums.items()}
            if len(idx_val) and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                preds = predict(nets, inputs, idx_val, device, cfg.eval_batch_size)
                acc = float((preds.mean_logits().argmax(1) == np.asarray(y_val)).mean())
                record["val_accuracy"] = acc
                if acc > best["acc"]:
                    best = {
                        "acc": acc,
                        "epoch": epoch,
                        "states": [copy.deepcopy(n.state_dict()) for n in nets],
                    }
            history.append(record)
    if best["states"] is not None:
        for net, state in zip(nets, best["states"], strict=True):
            net.load_state_dict(state)
    return FitResult(
        best_epoch=int(best["epoch"]) if best["states"] is not None else cfg.epochs,
        best_val_accuracy=float(best["acc"]) if best["states"] is not None else None,
        seconds=time.perf_counter() - start,
        steps=step,
        history=history,
    )
