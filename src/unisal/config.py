"""Typed configuration for a UniSAL run.

One dataclass per concern; a run is the composition of them. Presets give named
starting points (``cpu`` for a laptop or CI box, ``paper`` for the reference
settings on a GPU); a YAML file and then command-line flags override them.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, Union

import yaml

# Fixed view sets of the feature cache and how many views each holds (unisal.data.features
# implements them): the image as is, its four 90-degree rotations, or all eight flips/rotations.
VIEW_SETS: dict[str, int] = {"identity": 1, "rot4": 4, "d8": 8}
LEARNER_MODES = ("cotrain", "supervised")
FEATURE_ENGINES = ("auto", "torch", "openvino")  # what runs the frozen backbone (unisal.models.inference)


def data_formats() -> tuple[str, ...]:
    """The allowed ``data.format`` values: ``auto`` and the registered readers (looked up when
    checked, so that a reader registered later counts and config.py stays import-light)."""
    from unisal.data.catalogue import data_formats as registered

    return registered()


def learner_names() -> list[str]:
    """The registered learners (``learner.name``)."""
    from unisal.learners import learner_names as registered

    return registered()


def strategy_names() -> list[str]:
    """The registered query strategies (``query.strategy``)."""
    from unisal.query import strategy_names as registered

    return registered()


OPTIMIZERS = ("sgd", "adamw")
PSEUDO_LABELS = ("plain", "align", "debias")  # unisal.train.pseudo
THRESHOLDS = ("fixed", "freematch")
GUARDS = ("off", "fallback")  # unisal.guard
LABELLED_SAMPLING = ("uniform", "balanced")
SCORE_VIEWS = ("mean", "tta", "first")


def setting(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None,
) -> Any:
    """A config field with its allowed range (``ge`` ... ``lt``) or ``choices`` (a sequence, or a
    function returning one from a registry), checked by
    :func:`check_values` for values from presets, YAML files and flags alike."""
    metadata = {
        k: v for k, v in {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices}.items() if v is not None
    }
    return field(default=default, metadata=metadata)


@dataclass
class DataConfig:
    path: str = ""  # image folder, flat prefix folder, or CSV of path,label
    format: str = setting("auto", choices=data_formats)  # auto: guess from the path
    groups: str | None = None  # CSV path,group: splits never separate a group
    image_size: int = setting(64, ge=16, le=4096)  # side of the cached, decoded square images
    # Validation images for model selection, labels a lab would have to pay for (rounds.csv n_val).
    # 0 (default): none; train a fixed schedule and keep the last epoch. Chosen by measurement:
    # at equal total labels it beat 30 counted validation labels (docs/hardening.md, item 15).
    val_size: int | None = setting(0, ge=0)
    # of all labelled images, used instead when val_size is null (the paper's 10 %)
    val_fraction: float = setting(0.1, ge=0.0, lt=1.0)
    test_fraction: float = setting(
        0.2, gt=0.0, lt=1.0
    )  # of all labelled images, never queried nor trained on
    skip_bad_images: bool = False  # default is to stop on the first unreadable file
    # class name -> weight: keep whole groups so that the classes stand in this ratio (per seed), e.g.
    # {lung_n: 10, lung_aca: 3, lung_scc: 1}; classes not named are left out; empty: every image
    class_ratio: dict[str, float] = field(default_factory=dict)
    cache_dir: str | None = None  # decoded-image cache; default is the user cache folder


@dataclass
class ModelConfig:
    backbone: str = "tf_efficientnet_lite0"  # any timm model name
    pretrained: bool = True  # ImageNet weights (offline package for lite0, else timm hub)
    weights: str | None = None  # local checkpoint path or http(s) URL; overrides `pretrained`
    proj_dim: int = setting(128, ge=1)  # contrastive projection size, as in the paper
    drop_rate: float = setting(0.0, ge=0.0, lt=1.0)  # dropout before the classifier
    head_hidden: int = setting(256, ge=1)  # frozen learner: width of the trainable MLP on the cached features


@dataclass
class LearnerConfig:
    # registered learner: finetune (trains the backbone) | frozen (heads on cached features)
    name: str = setting("finetune", choices=learner_names)
    # cotrain: UniSAL's two networks, CPS + contrastive; supervised: labelled data only
    mode: str = setting("cotrain", choices=LEARNER_MODES)
    networks: int = setting(2, ge=1, le=2)  # networks whose logits are averaged; cotrain needs 2
    # At the end of a co-training round, compare with supervised heads trained on the same labels and
    # fall back to them when the co-trained ones look degenerate (unisal.guard); off: no check
    guard: str = setting("off", choices=GUARDS)


@dataclass
class FeatureConfig:
    """Multi-view feature cache of the frozen learner (ignored by ``finetune``)."""

    # fixed views per image: d8 = the 8 flips and 90-degree rotations; identity = as is
    views: str = setting("d8", choices=tuple(VIEW_SETS))
    crops: int = setting(0, ge=0, le=64)  # plus this many seeded random resized crops per image
    crop_scale_min: float = setting(0.6, gt=0.0, le=1.0)  # area fraction the cached crops keep at least
    batch_size: int = setting(64, ge=1)  # images per extraction step: bounds the memory, not the data set
    # what runs the backbone: auto = OpenVINO on a CPU (same features within float16 rounding,
    # several times faster), PyTorch on CUDA or where OpenVINO cannot convert the backbone
    engine: str = setting("auto", choices=FEATURE_ENGINES)
    # predict on the view-averaged features; tta: outputs averaged over views; first: as is
    score: str = setting("mean", choices=SCORE_VIEWS)


@dataclass
class TrainConfig:
    epochs: int = setting(8, ge=1)  # per AL round; the networks are re-initialised every round
    steps_per_epoch: int | None = setting(25, ge=1)  # None: one pass over the labelled set per epoch
    batch_size: int = setting(32, ge=2)  # labelled + unlabelled images per step
    lr: float = setting(1e-3, gt=0.0, le=10.0)
    momentum: float = setting(0.9, ge=0.0, lt=1.0)
    weight_decay: float = setting(8e-4, ge=0.0, le=1.0)
    lr_decay_at: float = setting(0.75, gt=0.0, le=1.0)  # step the learning rate down (x0.1) at this fraction
    tau: float = setting(0.7, gt=0.0, lt=1.0)  # confidence threshold for pseudo labels
    temperature: float = setting(0.15, gt=0.0)  # contrastive temperature T
    lambda_con: float = setting(0.1, ge=0.0)  # weight of the class-wise contrastive loss
    lambda_pl: float = setting(0.5, ge=0.0)  # weight of cross pseudo supervision after warm-up
    warmup_fraction: float = setting(0.25, ge=0.0, le=1.0)  # early predictions are noise: ramp lambda_pl
    crop_scale_min: float = setting(0.6, gt=0.0, le=1.0)  # random resized crop keeps at least this area
    eval_every: int = setting(2, ge=1)  # epochs between validations (model selection); last epoch always
    eval_batch_size: int = setting(128, ge=1)
    amp: bool = True  # mixed precision, only ever used on CUDA
    optimizer: str = setting("sgd", choices=OPTIMIZERS)  # sgd (reference code) | adamw (the frozen heads)
    ulb_ratio: float = setting(1.0, gt=0.0, le=100.0)  # unlabelled images per labelled one in a batch
    # labelled images per batch: uniform (each image equally often) or balanced (each class equally
    # often, its images in shuffled passes): keeps a rare class in every step's cross-entropy
    labelled_sampling: str = setting("uniform", choices=LABELLED_SAMPLING)
    # Robustness of cross pseudo supervision to few and imbalanced labels (unisal.train.pseudo, with
    # the papers): plain = the confident argmax; align = ReMixMatch's distribution alignment;
    # debias = DebiasPL's logit adjustment
    pseudo_labels: str = setting("plain", choices=PSEUDO_LABELS)
    thresholds: str = setting("fixed", choices=THRESHOLDS)  # fixed = tau; freematch = FreeMatch's per class
    pl_momentum: float = setting(0.99, ge=0.0, lt=1.0)  # per-step decay of the pseudo-label statistics
    debias_strength: float = setting(1.0, ge=0.0)  # DebiasPL's lambda
    # pseudo-labels from an exponential moving average of the other network (Mean Teacher,
    # Tarvainen & Valpola 2017) with this decay per step; 0: from the other network itself
    ema_teacher: float = setting(0.0, ge=0.0, lt=1.0)
    # CPS weight times min(1, labels per class / this): pseudo supervision grows with the labels; null: off
    cps_labels_per_class: int | None = setting(None, ge=1)
    # co-training starts from the heads of a supervised fit on the labels (same steps), not from scratch
    warm_start: bool = False


@dataclass
class QueryConfig:
    strategy: str = setting("unisal", choices=strategy_names)  # a registered strategy
    budget: int = setting(30, ge=1)  # images labelled per round
    pool_subset: int | None = setting(None, ge=1)  # score a random subset of the pool per round (speed)
    kmeans_n_init: int = setting(3, ge=1)  # k-means restarts of every strategy that runs k-means
    # UniSAL: share of each round's budget spent exploring (k-center greedy in the backbone features,
    # far from every label), so that a class the labels lack is found; other strategies ignore it
    explore: float = setting(0.0, ge=0.0, lt=1.0)
    params: dict[str, Any] = field(default_factory=dict)  # the strategy's own hyper-parameters
    # When to stop (Bloodgood & Vijay-Shanker 2009, unisal.stopping): a fixed sample of the pool
    # whose predictions are compared round to round with Cohen's kappa; 0 turns it off.
    stop_set: int = setting(1000, ge=0)
    stop_window: int = setting(3, ge=1)  # rounds whose mean kappa must reach stop_kappa
    stop_kappa: float = setting(0.99, ge=0.0, le=1.0)
    # Each round, also estimate accuracy from the labels alone (unisal.estimate): k-fold
    # cross-validation over the labelled set, k more trainings a round; 0 turns it off
    cv_folds: int = setting(0, ge=0, le=20)


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    query: QueryConfig = field(default_factory=QueryConfig)
    initial: int = setting(30, ge=1)  # random labelled images before the first round
    rounds: int = setting(5, ge=0)  # query rounds; the model is trained rounds + 1 times
    seed: int = setting(0, ge=0, lt=2**32)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = setting(None, ge=1, le=1024)  # CPU threads; None: the cores not busy elsewhere
    out: str = "runs/unisal"
    preset: str = "cpu"


# The fine-tuning settings of the defaults above: EfficientNet-Lite0 at 64 px, 200 steps a round.
_CPU_FINETUNE: dict[str, Any] = {"learner": {"name": "finetune"}}

# Heads on cached EfficientNet-Lite0 features of the 8 flips/rotations at 112 px: seconds a round
# on a CPU (see docs/results-frozen-lc25000-lung.md for the measurements behind the choice).
# Training robust to few and imbalanced labels (issue 15, docs/robust-default.md): class-balanced
# labelled batches, debiased pseudo-labels, co-training warm-started from supervised heads, the
# guard that falls back to those heads when the co-trained ones look degenerate; and a tenth of
# UniSAL's budget spent exploring, which finds a class the labels lack.
ROBUST_TRAINING: dict[str, Any] = {
    "learner": {"guard": "fallback"},
    "train": {"labelled_sampling": "balanced", "pseudo_labels": "debias", "warm_start": True},
    "query": {"explore": 0.1},
}
_CPU_FROZEN: dict[str, Any] = {
    "data": {"image_size": 112},
    "learner": {"name": "frozen", **ROBUST_TRAINING["learner"]},
    "model": {"head_hidden": 256, "drop_rate": 0.2},
    "features": {"views": "d8", "score": "mean"},
    "query": ROBUST_TRAINING["query"],
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
        **ROBUST_TRAINING["train"],
    },
}

PRESETS: dict[str, dict[str, Any]] = {
    "cpu": _CPU_FROZEN,
    "cpu-finetune": _CPU_FINETUNE,
    # Reference settings (Zhong et al. 2025 and their code) for GPU users.
    "paper": {
        "learner": {"name": "finetune"},
        # The reference selects the best epoch on a validation split of 10 % of all labelled
        # images, not counted in the budget (reported as n_val in rounds.csv).
        "data": {"image_size": 224, "val_size": None},
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
        "query": {"budget": 180, **ROBUST_TRAINING["query"]},
        "initial": 180,
        "rounds": 9,
    },
}


# Named setting bundles a benchmark arm can add on top of its base (``unisal@frozen+v1``, and
# several in order: ``unisal+balanced+debias``): the training candidates of issue 15; ``v1``,
# UniSAL's training as it was before them (the cpu preset until issue 15), pinned; ``v2``, the
# robust training the cpu preset has since, pinned.
RECIPES: dict[str, dict[str, Any]] = {
    "v2": ROBUST_TRAINING,
    "v1": {
        "query": {"explore": 0.0},
        "learner": {"guard": "off"},
        "train": {
            "labelled_sampling": "uniform",
            "pseudo_labels": "plain",
            "thresholds": "fixed",
            "ema_teacher": 0.0,
            "cps_labels_per_class": None,
            "warm_start": False,
        },
    },
    "balanced": {"train": {"labelled_sampling": "balanced"}},
    "explore10": {"query": {"explore": 0.1}},
    "explore25": {"query": {"explore": 0.25}},
    "align": {"train": {"pseudo_labels": "align"}},
    "debias": {"train": {"pseudo_labels": "debias"}},
    "freematch": {"train": {"thresholds": "freematch"}},
    "ema": {"train": {"ema_teacher": 0.99}},
    "grow": {"train": {"cps_labels_per_class": 30}},
    "warm": {"train": {"warm_start": True}},
    "guard": {"learner": {"guard": "fallback"}},
}


def recipe_values(name: str) -> dict[str, Any]:
    """The settings of recipe ``name``; ConfigError naming the known ones otherwise."""
    if name not in RECIPES:
        close = difflib.get_close_matches(name, list(RECIPES), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown recipe '{name}'{hint}; expected one of {sorted(RECIPES)}")
    return RECIPES[name]


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
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte at offset {exc.start})") from None
    except RecursionError:
        raise ConfigError(f"config file {path} is nested too deeply") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return values


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _choices(meta: dict[str, Any]) -> Sequence[str]:
    """A field's allowed values; a function (a registry's names) is called now."""
    choices = meta["choices"]
    return choices() if callable(choices) else choices


def _describe(meta: dict[str, Any]) -> str:
    """``>= 1``, ``in (0, 1)``, ``one of [...]``: the allowed values of a field, in words."""
    if "choices" in meta:
        return f"one of {list(_choices(meta))}"
    low = next(((k, meta[k]) for k in ("ge", "gt") if k in meta), None)
    high = next(((k, meta[k]) for k in ("le", "lt") if k in meta), None)
    if low and high:
        return f"in {'[' if low[0] == 'ge' else '('}{_number(low[1])}, {_number(high[1])}{']' if high[0] == 'le' else ')'}"
    if low:
        return f"{'>=' if low[0] == 'ge' else '>'} {_number(low[1])}"
    if high:
        return f"{'<=' if high[0] == 'le' else '<'} {_number(high[1])}"
    return ""


def _check_field(key: str, value: Any, kind: Any, meta: dict[str, Any]) -> Any:
    """``value`` checked against the annotation ``kind`` and the declared range; returns it (ints
    given for float fields become floats). Raises ConfigError naming ``key`` and what is allowed."""
    args = typing.get_args(kind)
    optional = type(None) in args
    base = (
        next((a for a in args if a is not type(None)), kind)
        if args and typing.get_origin(kind) in (Union, UnionType)
        else kind
    )
    allowed = _describe(meta) + (" (or null)" if optional and meta else "")
    if value is None:
        if optional:
            return None
        raise ConfigError(
            f"config key '{key}' must be set (got null){'; allowed: ' + allowed if allowed else ''}"
        )
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{key}' must be true or false, not {value!r}")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(
                f"config key '{key}' must be a whole number {allowed}, not {value!r}".replace("  ", " ")
            )
    elif base is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(
                f"config key '{key}' must be a finite number {allowed}, not {value!r}".replace("  ", " ")
            )
        value = float(value)
    elif base is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{key}' must be a text, not {value!r}")
    elif typing.get_origin(base) is dict or base is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping, not {value!r}")
        return value
    if "choices" in meta and value not in _choices(meta):
        close = difflib.get_close_matches(str(value), list(_choices(meta)), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"config key '{key}' must be {allowed}, not {value!r}{hint}")
    bounds = {
        "ge": lambda v, b: v >= b,
        "gt": lambda v, b: v > b,
        "le": lambda v, b: v <= b,
        "lt": lambda v, b: v < b,
    }
    if any(k in meta and not ok(value, meta[k]) for k, ok in bounds.items()):
        raise ConfigError(f"config key '{key}' must be {allowed}, not {value!r}")
    return value


def check_values(obj: Any, where: str = "") -> None:
    """Check every field of a config dataclass (recursively) against its type and declared range."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            check_values(value, f"{where}{f.name}.")
            continue
        setattr(obj, f.name, _check_field(f"{where}{f.name}", value, hints[f.name], dict(f.metadata)))


def validate(cfg: RunConfig) -> None:
    """Every value's type and range (from the dataclasses), then the rules between values."""
    check_values(cfg)
    checks = [
        (
            cfg.data.val_size is not None or cfg.data.val_fraction + cfg.data.test_fraction < 0.9,
            "data.val_fraction + data.test_fraction leave too little to train on (their sum must be < 0.9)",
        ),
        (
            cfg.learner.mode != "cotrain" or cfg.learner.networks == 2,
            "learner.mode cotrain trains two networks: learner.networks must be 2",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def absolute_paths(cfg: RunConfig) -> RunConfig:
    """Data, groups, cache and local weights paths made absolute, so that a run folder works from
    any directory (``unisal supervised``, ``--resume``). URLs stay as they are."""

    def absolute(path: str | None) -> str | None:
        return None if not path or "://" in path else os.path.abspath(Path(path).expanduser())

    cfg.data.path = absolute(cfg.data.path) or cfg.data.path
    cfg.data.groups = absolute(cfg.data.groups)
    cfg.data.cache_dir = absolute(cfg.data.cache_dir)
    if cfg.model.weights and "://" not in cfg.model.weights:
        cfg.model.weights = absolute(cfg.model.weights)
    cfg.out = absolute(cfg.out) or cfg.out
    return cfg


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(values: dict[str, Any]) -> RunConfig:
    cfg = RunConfig()
    _merge_into(cfg, values, "")
    return cfg
