"""Typed configuration for a UniSAL run.

One dataclass per concern; a run is the composition of them. Presets give named
starting points (``cpu`` for a laptop or CI box, ``paper`` for the reference
settings on a GPU); a YAML file and then command-line flags override them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Fixed view sets of the feature cache and how many views each holds (unisal.data.features
# implements them): the image as is, its four 90-degree rotations, or all eight flips/rotations.
VIEW_SETS: dict[str, int] = {"identity": 1, "rot4": 4, "d8": 8}
LEARNER_MODES = ("cotrain", "supervised")
DATA_FORMATS = ("auto", "folder", "prefix", "csv", "npz", "json")  # readers in unisal.data.catalogue
OPTIMIZERS = ("sgd", "adamw")
SCORE_VIEWS = ("mean", "tta", "first")


@dataclass
class DataConfig:
    path: str = ""  # image folder, flat prefix folder, or CSV of path,label
    format: str = "auto"  # folder | prefix | csv | npz | json | auto (guess from the path)
    groups: str | None = None  # CSV path,group: splits never separate a group
    image_size: int = 64  # side of the cached, decoded square images
    val_fraction: float = 0.1  # of all labelled images, used for model selection
    test_fraction: float = 0.2  # of all labelled images, never queried nor trained on
    skip_bad_images: bool = False  # default is to stop on the first unreadable file
    cache_dir: str | None = None  # decoded-image cache; default is the user cache folder


@dataclass
class ModelConfig:
    backbone: str = "tf_efficientnet_lite0"  # any timm model name
    pretrained: bool = True  # ImageNet weights (offline package for lite0, else timm hub)
    weights: str | None = None  # local checkpoint path or http(s) URL; overrides `pretrained`
    proj_dim: int = 128  # contrastive projection size, as in the paper
    drop_rate: float = 0.0  # dropout before the classifier
    head_hidden: int = 256  # frozen learner: width of the trainable MLP on the cached features


@dataclass
class LearnerConfig:
    name: str = (
        "finetune"  # registered learner: finetune (trains the backbone) | frozen (heads on cached features)
    )
    mode: str = "cotrain"  # cotrain: UniSAL's two networks, CPS + contrastive; supervised: labelled data only
    networks: int = 2  # networks whose logits are averaged; cotrain needs 2, a supervised reference 1 or 2


@dataclass
class FeatureConfig:
    """Multi-view feature cache of the frozen learner (ignored by ``finetune``)."""

    views: str = "d8"  # fixed views per image: d8 = the 8 flips and 90-degree rotations; identity = as is
    crops: int = 0  # plus this many seeded random resized crops per image (flipped and rotated at random)
    crop_scale_min: float = 0.6  # area fraction the cached crops keep at least
    batch_size: int = 64  # images per extraction step: bounds the memory, not the data set
    score: str = (
        "mean"  # predict on the view-averaged features; tta: outputs averaged over views; first: as is
    )


@dataclass
class TrainConfig:
    epochs: int = 8  # per AL round; the networks are re-initialised every round
    steps_per_epoch: int | None = 25  # None: one pass over the labelled set per epoch
    batch_size: int = 32  # half labelled, half unlabelled (reference code)
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 8e-4
    lr_decay_at: float = 0.75  # step the learning rate down (x0.1) at this fraction of training
    tau: float = 0.7  # confidence threshold for pseudo labels
    temperature: float = 0.15  # contrastive temperature T
    lambda_con: float = 0.1  # weight of the class-wise contrastive loss
    lambda_pl: float = 0.5  # weight of cross pseudo supervision after warm-up
    warmup_fraction: float = 0.25  # early predictions are noise: ramp lambda_pl over this part
    crop_scale_min: float = 0.6  # random resized crop keeps at least this area fraction
    eval_every: int = 2  # epochs between validations (model selection); last epoch always
    eval_batch_size: int = 128
    amp: bool = True  # mixed precision, only ever used on CUDA
    optimizer: str = "sgd"  # sgd (reference code) | adamw (the frozen heads: faster to converge)
    ulb_ratio: float = 1.0  # unlabelled images per labelled one in a co-training batch (1: half and half)


@dataclass
class QueryConfig:
    strategy: str = "unisal"  # registered strategy name (unisal, random, ...)
    budget: int = 30  # images labelled per round
    pool_subset: int | None = None  # score a random subset of the pool per round (speed)
    kmeans_n_init: int = 3  # k-means restarts of every strategy that runs k-means (unisal, cs_only, kmeans)
    params: dict[str, Any] = field(default_factory=dict)  # the strategy's own hyper-parameters


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    query: QueryConfig = field(default_factory=QueryConfig)
    initial: int = 30  # random labelled images before the first round
    rounds: int = 5  # query rounds; the model is trained rounds + 1 times
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    out: str = "runs/unisal"
    preset: str = "cpu"


# The fine-tuning settings of the defaults above: EfficientNet-Lite0 at 64 px, 200 steps a round.
_CPU_FINETUNE: dict[str, Any] = {"learner": {"name": "finetune"}}

# Heads on cached EfficientNet-Lite0 features of the 8 flips/rotations at 112 px: seconds a round
# on a CPU (see docs/results-frozen-lc25000-lung.md for the measurements behind the choice).
_CPU_FROZEN: dict[str, Any] = {
    "data": {"image_size": 112},
    "learner": {"name": "frozen"},
    "model": {"head_hidden": 256, "drop_rate": 0.2},
    "features": {"views": "d8", "score": "mean"},
    "train": {
        "optimizer": "adamw",
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "epochs": 10,
        "steps_per_epoch": 20,
        "batch_size": 128,
        "ulb_ratio": 3.0,
        "eval_every": 1,
        "eval_batch_size": 1024,
    },
}

PRESETS: dict[str, dict[str, Any]] = {
    "cpu": _CPU_FROZEN,
    "cpu-finetune": _CPU_FINETUNE,
    # Reference settings (Zhong et al. 2025 and their code) for GPU users.
    "paper": {
        "learner": {"name": "finetune"},
        "data": {"image_size": 224},
        "model": {"backbone": "resnet50", "pretrained": True},
        # Batch 128 (64 labelled); pseudo supervision on from epoch 15 of 200 in the reference.
        "train": {
            "epochs": 200,
            "steps_per_epoch": None,
            "batch_size": 128,
            "eval_every": 1,
            "warmup_fraction": 0.075,
        },
        "query": {"budget": 180},
        "initial": 180,
        # The reference trains 10 times (180 ... 1,800 labels): 9 query rounds after round 0.
        "rounds": 9,
    },
    # A pathology foundation model (gated on the Hugging Face hub: see the README) as a frozen
    # encoder on a GPU; the heads train as on the CPU.
    "gpu-frozen": {
        **_CPU_FROZEN,
        "data": {"image_size": 224},
        "model": {**_CPU_FROZEN["model"], "backbone": "uni", "pretrained": True},
        "features": {"views": "d8", "score": "mean", "batch_size": 256},
        "query": {"budget": 180},
        "initial": 180,
        "rounds": 9,
    },
}


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


def _merge_into(obj: Any, values: dict[str, Any], where: str) -> None:
    names = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"unknown config key '{where}{key}'; expected one of {sorted(names)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{where}{key}' must be a mapping")
            _merge_into(current, value, f"{where}{key}.")
        else:
            setattr(obj, key, value)


def build_config(
    preset: str = "cpu",
    file_values: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """Preset, then YAML values, then flag overrides (nested dicts), validated."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset '{preset}'; expected one of {sorted(PRESETS)}")
    cfg = RunConfig(preset=preset)
    _merge_into(cfg, PRESETS[preset], "")
    for values in (file_values or {}, overrides or {}):
        _merge_into(cfg, values, "")
    validate(cfg)
    return cfg


def apply_overrides(cfg: RunConfig, values: dict[str, Any]) -> None:
    """Set the nested ``values`` on ``cfg`` in place (unknown keys are an error), then validate."""
    _merge_into(cfg, values, "")
    validate(cfg)


def load_yaml(path: str | Path) -> dict[str, Any]:
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return values


def validate(cfg: RunConfig) -> None:
    checks = [
        (cfg.initial >= 1, "initial must be at least 1"),
        (cfg.rounds >= 0, "rounds must be >= 0"),
        (cfg.query.budget >= 1, "budget must be at least 1"),
        (cfg.data.image_size >= 16, "image_size must be at least 16"),
        (cfg.train.epochs >= 1, "epochs must be at least 1"),
        (cfg.train.batch_size >= 2, "batch_size must be at least 2"),
        (0.0 < cfg.train.tau < 1.0, "tau must be in (0, 1)"),
        (cfg.train.temperature > 0, "temperature must be positive"),
        (0.0 < cfg.train.crop_scale_min <= 1.0, "crop_scale_min must be in (0, 1]"),
        (0.0 <= cfg.data.val_fraction < 1.0, "val_fraction must be in [0, 1)"),
        (0.0 < cfg.data.test_fraction < 1.0, "test_fraction must be in (0, 1)"),
        (
            cfg.data.val_fraction + cfg.data.test_fraction < 0.9,
            "val_fraction + test_fraction leave too little to train on",
        ),
        (cfg.data.format in DATA_FORMATS, f"format must be one of {list(DATA_FORMATS)}"),
        (cfg.learner.mode in LEARNER_MODES, f"learner.mode must be one of {list(LEARNER_MODES)}"),
        (cfg.learner.networks in (1, 2), "learner.networks must be 1 or 2"),
        (
            cfg.learner.mode != "cotrain" or cfg.learner.networks == 2,
            "learner.mode cotrain trains two networks: learner.networks must be 2",
        ),
        (cfg.features.views in VIEW_SETS, f"features.views must be one of {list(VIEW_SETS)}"),
        (cfg.features.crops >= 0, "features.crops must be >= 0"),
        (0.0 < cfg.features.crop_scale_min <= 1.0, "features.crop_scale_min must be in (0, 1]"),
        (cfg.features.batch_size >= 1, "features.batch_size must be at least 1"),
        (cfg.features.score in SCORE_VIEWS, f"features.score must be one of {list(SCORE_VIEWS)}"),
        (cfg.model.head_hidden >= 1, "model.head_hidden must be at least 1"),
        (cfg.train.optimizer in OPTIMIZERS, f"train.optimizer must be one of {list(OPTIMIZERS)}"),
        (cfg.train.ulb_ratio > 0, "train.ulb_ratio must be positive"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(values: dict[str, Any]) -> RunConfig:
    cfg = RunConfig()
    _merge_into(cfg, values, "")
    return cfg
