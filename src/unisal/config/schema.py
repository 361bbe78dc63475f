"""The schema of a run's configuration: one typed dataclass per concern, composed by
:class:`RunConfig`, each field with its default, its allowed values and a comment saying why.

Presets (:mod:`unisal.config.presets`) give named starting points; a YAML file and then
command-line flags override them; :mod:`unisal.config.checks` merges and checks the values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Fixed view sets of the feature cache and how many views each holds (unisal.models.features
# implements them): the image as is, its four 90-degree rotations, or all eight flips/rotations.
VIEW_SETS: dict[str, int] = {"identity": 1, "rot4": 4, "d8": 8}
LEARNER_MODES = ("cotrain", "supervised")
FEATURE_ENGINES = ("auto", "torch", "openvino")  # what runs the frozen backbone (unisal.models.inference)


OPTIMIZERS = ("sgd", "adamw")
PSEUDO_LABELS = ("plain", "align", "debias")  # unisal.train.pseudo
THRESHOLDS = ("fixed", "freematch")
GUARDS = ("off", "fallback")  # unisal.guard
LABELLED_SAMPLING = ("uniform", "balanced")
PREDICT_VIEWS = ("mean", "tta", "first")
# where a run's pixels come from (unisal.data.prepare.streams_pixels): the decoded-image cache, or
# the items themselves as they are read; auto: streamed where the learner reads them once and the
# cache would be large
PIXEL_CACHES = ("auto", "keep", "stream")
DECODERS = ("pil", "device")  # who decodes streamed JPEG files (unisal.data.stream)


def setting(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Sequence[str] | None = None,
    registry: str | None = None,
) -> Any:
    """A config field with its allowed range (``ge`` ... ``lt``) or ``choices``, checked by
    :func:`unisal.config.checks.check_values` for values from presets, YAML files and flags alike.

    ``registry`` names the registry whose names the field takes (``strategy``, ``learner``,
    ``data format``): those are checked where the registries live (:mod:`unisal.settings`), so
    that the configuration imports none of their implementations.
    """
    metadata = {
        k: v
        for k, v in {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "registry": registry}.items()
        if v is not None
    }
    return field(default=default, metadata=metadata)


@dataclass
class DataConfig:
    path: str = ""  # image folder, flat prefix folder, or CSV of path,label
    format: str = setting("auto", registry="data format")  # auto: guess from the path
    groups: str | None = None  # CSV path,group: splits never separate a group
    # options of the format's reader (unisal.data.readers.reader_options), e.g. {separator: _}
    reader_options: dict[str, str] = field(default_factory=dict)
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
    # keep: decode every image once into the cache (a learner that reads pixels every epoch needs
    # it); stream: decode items as they are read, no cache (the frozen learner reads them once, to
    # extract features); auto: stream where the learner can and the cache would exceed 8 GB
    pixel_cache: str = setting("auto", choices=PIXEL_CACHES)
    # pil: every item decoded on the CPU as the cache does; device: streamed JPEG files decoded in
    # batches on the extraction device (nvJPEG on CUDA): a GPU kept fed, pixels within a few levels
    # of Pillow's, so feature caches of their own
    decoder: str = setting("pil", choices=DECODERS)


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
    name: str = setting("finetune", registry="learner")
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
    # images per shard of the cache: what a kill can lose, a Ray worker's unit of work
    shard_images: int = setting(1024, ge=1)
    # what runs the backbone: auto = OpenVINO on a CPU (same features within float16 rounding,
    # several times faster), PyTorch on CUDA or where OpenVINO cannot convert the backbone
    engine: str = setting("auto", choices=FEATURE_ENGINES)
    # predict on the view-averaged features; tta: outputs averaged over views; first: as is
    predict_views: str = setting("mean", choices=PREDICT_VIEWS)


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
    strategy: str = setting("unisal", registry="strategy")  # a registered strategy
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
