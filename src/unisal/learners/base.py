"""The learner contract: what the AL loop, the references, the benchmark and the app talk to.

A learner owns its networks and where their inputs come from. ``fit`` trains fresh networks on
labelled (and, when co-training, unlabelled) catalogue indices with model selection on a
validation set; ``predict`` gives per-network logits, projected embeddings and, on request,
backbone features; ``state_dict``/``load_state_dict`` save and restore the trained networks.
Constructors do no I/O and ``check`` validates settings without touching disk or network, so a
run can refuse bad settings before it writes anything; ``prepare`` does the one-off heavy work
(loading weights, building the feature cache).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from unisal.config import ConfigError, RunConfig
from unisal.data.prepare import PreparedData
from unisal.guard import POOL_SAMPLE, GuardVerdict, guard_verdict
from unisal.models.network import UniSALNet
from unisal.registry import Registry
from unisal.train.evaluate import (
    Predictions,
    evaluate,
    predict,
    predict_batches,
    predict_mc_batches,
    predict_mc_dropout,
)
from unisal.train.fit import FitResult, TrainingSets, fit
from unisal.train.inputs import NetworkInputs


class Learner(ABC):
    """Base class; subclasses say how to build networks and where their inputs come from.

    Args:
        cfg: the run's settings (``learner``, ``model``, ``train`` and, for frozen, ``features``).
        n_classes: number of classes C.
        device: where networks train and predict.

    Progress and messages go out as events (:mod:`unisal.events`).
    """

    name: ClassVar[str] = "base"
    # reads pixels at every fit and prediction, so it needs the decoded-image cache; False: reads
    # them once in ``prepare`` (the frozen learner's features), so they may be streamed
    reads_pixels: ClassVar[bool] = True

    def __init__(
        self,
        cfg: RunConfig,
        n_classes: int,
        device: torch.device,
    ):
        self.cfg = cfg
        self.n_classes = n_classes
        self.device = device
        self.nets: list[UniSALNet] = []
        self._inputs: NetworkInputs | None = None
        self.class_names: list[str] | None = None  # for the guard's reasons; set by prepare
        # after a fit with a supervised companion (warm start or guard): both sets of heads by name
        self.alternatives: dict[str, list[UniSALNet]] = {}

    # ---- settings
    @classmethod
    def check(cls, cfg: RunConfig) -> None:
        """Raise ConfigError for settings this learner cannot use. No I/O."""
        from unisal.models.backbones import check_backbone_name

        check_backbone_name(cfg.model.backbone, cfg.data.image_size)
        if cls.reads_pixels and (cfg.data.pixel_cache == "stream" or cfg.data.decoder != "pil"):
            what = (
                "--pixel-cache stream"
                if cfg.data.pixel_cache == "stream"
                else f"--decoder {cfg.data.decoder}"
            )
            raise ConfigError(
                f"the {cls.name} learner reads the images at every epoch, so it needs the decoded-image "
                f"cache: drop {what}, or use the frozen learner, which reads them once"
            )

    @property
    def cotrain(self) -> bool:
        """UniSAL co-training (two networks, unlabelled data) rather than labels only."""
        return self.cfg.learner.mode == "cotrain"

    @property
    def n_networks(self) -> int:
        return self.cfg.learner.networks

    # ---- what subclasses provide
    @abstractmethod
    def make_inputs(self, data: PreparedData) -> NetworkInputs:
        """Where the networks read images or features; may do heavy one-off work."""

    @abstractmethod
    def new_networks(self, seed: int) -> list[UniSALNet]:
        """``n_networks`` freshly initialised networks; network k is seeded with ``seed + k``."""

    def step_bytes(self, n_images: int) -> int:
        """Rough peak memory (bytes) of one training step on ``n_images`` images, every network
        seeing its own view of each (see :mod:`unisal.memory`)."""
        from unisal.memory import image_step_bytes

        return image_step_bytes(n_images, self.n_networks, self.cfg.data.image_size)

    # ---- the protocol
    def prepare(self, data: PreparedData) -> None:
        """One-off work before the first fit (weights, caches); writes nothing to a run folder."""
        self._inputs = self.make_inputs(data)
        self.class_names = list(data.catalogue.class_names)

    @property
    def inputs(self) -> NetworkInputs:
        if self._inputs is None:
            raise RuntimeError(f"{type(self).__name__}.prepare(data) must run before fit or predict")
        return self._inputs

    def fit(self, sets: TrainingSets, *, init_seed: int, seed: int) -> FitResult:
        """Train fresh networks (seeded by ``init_seed``) and keep the best validation weights.

        Args:
            sets: the labelled, unlabelled (ignored in supervised mode, but counted for the batch)
                and validation images.
            init_seed: seeds the networks' initial weights.
            seed: seeds batch order and views. :func:`unisal.seeds.fit_seeds` gives both for a round.
        """
        cfg = self.cfg
        self.alternatives = {}
        # A batch may hold every training image there is, labelled or not: with fewer labels than
        # the batch, a supervised batch repeats them (each time another view), as it always has.
        limit = sets.n_images
        labelled = sets.labelled_only()
        supervised: list[UniSALNet] | None = None
        companion: FitResult | None = None
        if self.cotrain and (cfg.train.warm_start or cfg.learner.guard != "off"):
            # the heads of `unisal@<learner>:supervised`: the same networks, seeds, steps and batches
            supervised, companion = self._fit_nets(self.new_networks(init_seed), labelled, seed, limit)
        nets = (
            copy.deepcopy(supervised) if cfg.train.warm_start and supervised else self.new_networks(init_seed)
        )
        self.nets, result = self._fit_nets(nets, sets if self.cotrain else labelled, seed, limit)
        if supervised is None or companion is None:
            return result
        self.alternatives = {"cotrain": self.nets, "supervised": supervised}
        result.seconds += companion.seconds  # the round's training: both fits
        if cfg.learner.guard != "off":
            verdict = self._judge(supervised, sets.idx_lb, sets.y_lb, sets.idx_ulb, seed)
            result.guard = verdict.record()
            if verdict.fallback:  # the round's model is the supervised one; the history stays
                self.nets = supervised  # that of the co-training, which shows the collapse
                result.best_epoch, result.best_val_accuracy = (
                    companion.best_epoch,
                    companion.best_val_accuracy,
                )
        return result

    def _fit_nets(
        self, nets: list[UniSALNet], sets: TrainingSets, seed: int, batch_limit: int
    ) -> tuple[list[UniSALNet], FitResult]:
        torch.manual_seed(seed)
        result = fit(nets, self.inputs, sets, self.cfg.train, self.device, seed=seed, batch_limit=batch_limit)
        return nets, result

    def _judge(
        self,
        supervised: list[UniSALNet],
        idx_lb: np.ndarray,
        y_lb: np.ndarray,
        idx_ulb: np.ndarray,
        seed: int,
    ) -> GuardVerdict:
        """The guard (:mod:`unisal.guard`) on a seeded sample of the unlabelled images."""
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(idx_ulb, size=min(POOL_SAMPLE, len(idx_ulb)), replace=False))
        both = np.concatenate([sample, np.asarray(idx_lb)])
        cot = self._predict_with(self.nets, both).mean_logits()
        sup = self._predict_with(supervised, both).mean_logits()
        n = len(sample)
        names = [str(c) for c in range(cot.shape[1])] if self.class_names is None else self.class_names
        return guard_verdict(cot[:n], sup[:n], cot[n:], sup[n:], np.asarray(y_lb), names)

    def _predict_with(self, nets: list[UniSALNet], idx: np.ndarray) -> Predictions:
        return predict(nets, self.inputs, idx, self.device, self.cfg.train.eval_batch_size, desc="guard")

    def _trained(self) -> list[UniSALNet]:
        if not self.nets:
            raise RuntimeError(f"{type(self).__name__} has no trained networks: fit or load_state_dict first")
        return self.nets

    def predict(
        self,
        idx: np.ndarray,
        *,
        with_features: bool = False,
        outputs: Sequence[str] | None = None,
        desc: str = "scoring",
    ) -> Predictions:
        """Per-network outputs on images ``idx`` (N,): logits (K, N, C), embeddings (K, N, P), and
        features and hidden ``with_features``; or exactly ``outputs`` (logits always)."""
        return predict(
            self._trained(),
            self.inputs,
            idx,
            self.device,
            self.cfg.train.eval_batch_size,
            desc=desc,
            with_features=with_features,
            outputs=outputs,
        )

    def predict_batches(
        self, idx: np.ndarray, *, outputs: Sequence[str], desc: str = "scoring"
    ) -> Iterator[tuple[int, Predictions]]:
        """The same outputs one batch at a time: (offset into ``idx``, predictions on the batch)."""
        return predict_batches(
            self._trained(),
            self.inputs,
            idx,
            self.device,
            self.cfg.train.eval_batch_size,
            outputs=outputs,
            desc=desc,
        )

    def predict_mc(self, idx: np.ndarray, *, n_samples: int, seed: int) -> np.ndarray:
        """MC-dropout probabilities (K * n_samples, N, C) on images ``idx`` (N,); seeded."""
        return predict_mc_dropout(
            self._trained(),
            self.inputs,
            idx,
            self.device,
            n_samples=n_samples,
            seed=seed,
            batch_size=self.cfg.train.eval_batch_size,
        )

    def predict_mc_batches(
        self, idx: np.ndarray, *, n_samples: int, seed: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        """The same, one batch at a time: (offset, (K * n_samples, B, C))."""
        return predict_mc_batches(
            self._trained(),
            self.inputs,
            idx,
            self.device,
            n_samples=n_samples,
            seed=seed,
            batch_size=self.cfg.train.eval_batch_size,
        )

    def evaluate(
        self, idx: np.ndarray, y_true: np.ndarray, *, nets: list[UniSALNet] | None = None
    ) -> tuple[dict[str, float], np.ndarray]:
        """Metrics and (C, C) confusion matrix of the averaged logits on images ``idx`` (N,), of the
        trained networks or of ``nets`` (one of :attr:`alternatives`)."""
        return evaluate(
            nets or self._trained(),
            self.inputs,
            idx,
            y_true,
            self.device,
            self.cfg.train.eval_batch_size,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"learner": self.name, "nets": [net.state_dict() for net in self._trained()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore trained networks (from ``state_dict``) without training."""
        if state.get("learner", self.name) != self.name:
            raise ConfigError(
                f"the checkpoint was written by the '{state['learner']}' learner, not '{self.name}'"
            )
        nets = self.new_networks(0)
        if len(state["nets"]) != len(nets):
            raise ConfigError(f"the checkpoint holds {len(state['nets'])} networks, the learner {len(nets)}")
        for net, weights in zip(nets, state["nets"], strict=True):
            net.load_state_dict(weights)
            net.to(self.device)
        self.nets = nets


LEARNERS: Registry[type[Learner]] = Registry("learner")


def register_learner(name: str) -> Callable[[type[Learner]], type[Learner]]:
    return LEARNERS.register(name)


def learner_names() -> list[str]:
    return LEARNERS.names()


def learner_class(name: str) -> type[Learner]:
    return LEARNERS.get(name)


def create_learner(
    cfg: RunConfig,
    n_classes: int,
    device: torch.device,
) -> Learner:
    """The learner ``cfg.learner.name``, its settings checked (no I/O)."""
    cls = learner_class(cfg.learner.name)
    cls.check(cfg)
    return cls(cfg, n_classes, device)
