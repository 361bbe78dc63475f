"""The training loop as it was before the learner interface (commit fa8fc66^, ``train/fit.py``).

Kept as the test's reference: ``test_finetune_path_is_unchanged`` runs it and today's ``fit``
in the same process, on the same machine and thread count, so that they must agree exactly,
whatever the CPU (a golden file recorded on one CPU cannot: another CPU's kernels round
differently, and 18 SGD steps at lr 0.05 amplify that to 40 % in the losses). Only the loop is
copied: the sampler, the weak view, the losses and ``predict`` are the library's own, tested
on their own (``test_losses.py`` checks the losses against per-sample loops).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from unisal.config import TrainConfig
from unisal.data.cache import ImageStore
from unisal.data.views import normalise, to_float, weak_view
from unisal.models.network import NetOutput
from unisal.train.evaluate import predict
from unisal.train.fit import IndexSampler
from unisal.train.inputs import ImageInputs
from unisal.train.losses import classwise_contrastive_loss, cross_pseudo_supervision, sigmoid_rampup


def _loss(outs: list[NetOutput], y_lb: torch.Tensor, cfg: TrainConfig, weight_pl: float) -> tuple[Any, dict]:  # type: ignore[type-arg]
    n_lb = len(y_lb)
    loss = torch.stack([F.cross_entropy(o.logits[:n_lb].float(), y_lb) for o in outs]).sum()
    parts = {"ce": float(loss.detach())}
    if len(outs) == 2 and outs[0].logits.shape[0] > n_lb:
        o1, o2 = outs
        loss_pl, masks = cross_pseudo_supervision(o1.logits[n_lb:].float(), o2.logits[n_lb:].float(), cfg.tau)
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
    return loss, parts


def reference_fit(
    nets: list[Any],
    store: ImageStore,
    idx_lb: np.ndarray,
    y_lb: np.ndarray,
    idx_ulb: np.ndarray | None,
    idx_val: np.ndarray,
    y_val: np.ndarray,
    cfg: TrainConfig,
    seed: int,
) -> tuple[int, list[dict[str, float]]]:
    """(best epoch, history) of the pre-refactor co-training / supervised loop on the CPU."""
    semi = idx_ulb is not None and len(idx_ulb) > 0 and len(nets) == 2
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    label_of = dict(zip(np.asarray(idx_lb).tolist(), np.asarray(y_lb).tolist(), strict=True))
    sampler_lb = IndexSampler(idx_lb, rng)
    sampler_ulb = IndexSampler(idx_ulb, rng) if semi and idx_ulb is not None else None
    bs_lb = cfg.batch_size // 2 if semi else cfg.batch_size
    bs_ulb = cfg.batch_size - bs_lb
    steps_per_epoch = cfg.steps_per_epoch or max(1, math.ceil(len(idx_lb) / bs_lb))
    total = cfg.epochs * steps_per_epoch
    warmup = int(total * cfg.warmup_fraction)
    params = [p for net in nets for p in net.parameters()]
    optimiser = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    inputs = ImageInputs(store, nets[0].mean, nets[0].std, cfg.crop_scale_min)  # for predict only
    best: dict[str, Any] = {"acc": -1.0, "epoch": 0, "states": None}
    history: list[dict[str, float]] = []
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        for net in nets:
            net.train()
        sums: dict[str, float] = {}
        for _ in range(steps_per_epoch):
            for group in optimiser.param_groups:
                group["lr"] = cfg.lr * (0.1 if step >= int(total * cfg.lr_decay_at) else 1.0)
            b_lb = sampler_lb.next(bs_lb)
            y = torch.as_tensor([label_of[i] for i in b_lb.tolist()])
            batch = b_lb if sampler_ulb is None else np.concatenate([b_lb, sampler_ulb.next(bs_ulb)])
            images = torch.from_numpy(store.get(batch))
            outs = [
                net(normalise(weak_view(to_float(images), generator, cfg.crop_scale_min), net.mean, net.std))
                for net in nets
            ]
            loss, parts = _loss(outs, y, cfg, cfg.lambda_pl * sigmoid_rampup(step, warmup))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + value
            step += 1
        record = {"epoch": float(epoch)} | {k: v / steps_per_epoch for k, v in sums.items()}
        if len(idx_val) and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
            preds = predict(nets, inputs, idx_val, torch.device("cpu"), cfg.eval_batch_size)
            acc = float((preds.mean_logits().argmax(1) == np.asarray(y_val)).mean())
            record["val_accuracy"] = acc
            if acc > best["acc"]:
                best = {"acc": acc, "epoch": epoch, "states": [copy.deepcopy(n.state_dict()) for n in nets]}
        history.append(record)
    if best["states"] is not None:
        for net, state in zip(nets, best["states"], strict=True):
            net.load_state_dict(state)
    return (int(best["epoch"]) if best["states"] is not None else cfg.epochs), history
