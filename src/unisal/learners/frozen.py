"""Frozen backbone: small heads train on cached multi-view features, with the full UniSAL objective.

The backbone runs once over fixed views of every image (see :mod:`unisal.models.features`). At
every step each network gets, per image, a view drawn independently from the cached ones, which
plays the part of the weak augmentation; the loss is the fine-tuning loss (CE, cross pseudo
supervision, class-wise contrastive) through the same training loop.
"""

from __future__ import annotations

from unisal.config import ConfigError, RunConfig
from unisal.data.prepare import PreparedData
from unisal.learners.base import Learner, register_learner
from unisal.models.feature_cache import build_feature_cache
from unisal.models.features import FeatureStore, ViewSpec
from unisal.models.heads import build_head
from unisal.models.network import UniSALNet
from unisal.train.inputs import FeatureInputs, NetworkInputs


@register_learner("frozen")
class FrozenLearner(Learner):
    """Two (or, supervised, one) MLP heads on features of a frozen pretrained backbone."""

    features: FeatureStore | None = None
    reads_pixels = False  # once, to build the feature cache: they may be streamed

    @classmethod
    def check(cls, cfg: RunConfig) -> None:
        super().check(cfg)
        if not cfg.model.pretrained and cfg.model.weights is None:
            raise ConfigError(
                "the frozen learner needs pretrained weights (a frozen random backbone learns nothing): "
                "drop --no-pretrained, or pass --weights PATH"
            )

    def step_bytes(self, n_images: int) -> int:
        from unisal.memory import feature_step_bytes

        dim = self.features.dim if self.features is not None else 2048
        return feature_step_bytes(n_images, self.n_networks, dim)

    def make_inputs(self, data: PreparedData) -> NetworkInputs:
        self.features = build_feature_cache(
            data.store,
            self.cfg.model,
            spec=ViewSpec.from_config(self.cfg.features),
            device=self.device,
            cache_dir=self.cfg.data.cache_dir,
            batch_size=self.cfg.features.batch_size,
            engine=self.cfg.features.engine,
            shard_images=self.cfg.features.shard_images,
        )
        # streamed pixels: the items that could not be read are known only now
        data.leave_out_unreadable(self.features.unreadable, skip=self.cfg.data.skip_bad_images)
        return FeatureInputs(self.features, self.cfg.features.predict_views)

    def new_networks(self, seed: int) -> list[UniSALNet]:
        if self.features is None:
            raise RuntimeError("FrozenLearner.prepare(data) must run before its networks are built")
        model = self.cfg.model
        return [
            build_head(
                self.features.dim,
                self.n_classes,
                hidden=model.head_hidden,
                proj_dim=model.proj_dim,
                dropout=model.drop_rate,
                seed=seed + k,
            )
            for k in range(self.n_networks)
        ]
