"""Fine-tuning: the backbone trains with its heads on weakly augmented images (the paper's setting)."""

from __future__ import annotations

from unisal.data.prepare import PreparedData
from unisal.learners.base import Learner, register_learner
from unisal.models.network import UniSALNet, build_network
from unisal.train.inputs import ImageInputs, NetworkInputs


@register_learner("finetune")
class FinetuneLearner(Learner):
    """Two (or, supervised, one) timm networks re-initialised from the pretrained weights every fit."""

    def make_inputs(self, data: PreparedData) -> NetworkInputs:
        # Building one network loads the weights once: a bad checkpoint fails here, before a run writes.
        probe = build_network(self.cfg.model, self.n_classes, seed=0)
        return ImageInputs(data.store, probe.mean, probe.std, self.cfg.train.crop_scale_min)

    def new_networks(self, seed: int) -> list[UniSALNet]:
        return [build_network(self.cfg.model, self.n_classes, seed + k) for k in range(self.n_networks)]
