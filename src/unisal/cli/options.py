"""Options shared by sub-commands, and the flag -> config mapping."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import click


def names_of(kind: str) -> Callable[[], list[str]]:
    """A function returning registry ``kind``'s names (:data:`unisal.settings.REGISTERED`),
    importing the registries only when it is called."""

    def names() -> list[str]:
        from unisal.settings import registered_names

        return registered_names(kind)

    return names


class RegistryChoice(click.ParamType):
    """A choice among a registry's names (strategies, learners, readers), looked up when the
    option is parsed or its help is shown: the lists are never kept by hand, and the CLI starts
    without importing every implementation."""

    name = "choice"

    def __init__(self, names: Callable[[], Sequence[str]], kind: str):
        self._names = names
        self.kind = kind

    def _choice(self) -> click.Choice[str]:
        return click.Choice(list(self._names()))

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str | None:
        return self._choice().get_metavar(param, ctx)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from unisal.registry import unknown_name

        names = list(self._names())
        if value not in names:
            self.fail(unknown_name(self.kind, value, names), param, ctx)
        return value

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[click.shell_completion.CompletionItem]:
        return self._choice().shell_complete(ctx, param, incomplete)


# flag name -> path in RunConfig
CONFIG_PATHS: dict[str, tuple[str, ...]] = {
    "data": ("data", "path"),
    "groups": ("data", "groups"),
    "val_size": ("data", "val_size"),
    "format": ("data", "format"),
    "reader_option": ("data", "reader_options"),
    "image_size": ("data", "image_size"),
    "skip_bad_images": ("data", "skip_bad_images"),
    "cache_dir": ("data", "cache_dir"),
    "pixel_cache": ("data", "pixel_cache"),
    "decoder": ("data", "decoder"),
    "learner": ("learner", "name"),
    "mode": ("learner", "mode"),
    "networks": ("learner", "networks"),
    "views": ("features", "views"),
    "crops": ("features", "crops"),
    "predict_views": ("features", "predict_views"),
    "feature_engine": ("features", "engine"),
    "backbone": ("model", "backbone"),
    "pretrained": ("model", "pretrained"),
    "weights": ("model", "weights"),
    "drop_rate": ("model", "drop_rate"),
    "epochs": ("train", "epochs"),
    "steps_per_epoch": ("train", "steps_per_epoch"),
    "batch_size": ("train", "batch_size"),
    "lr": ("train", "lr"),
    "labelled_sampling": ("train", "labelled_sampling"),
    "strategy": ("query", "strategy"),
    "budget": ("query", "budget"),
    "pool_subset": ("query", "pool_subset"),
    "initial": ("initial",),
    "rounds": ("rounds",),
    "seed": ("seed",),
    "device": ("device",),
    "threads": ("threads",),
    "out": ("out",),
}


def overrides_from_flags(flags: dict[str, Any]) -> dict[str, Any]:
    """Nested dict of the flags the user actually gave (None means 'not given')."""
    nested: dict[str, Any] = {}
    regions = flags.get("regions")
    if regions:  # sugar for --reader-option regions=PATH (a tile table's labels from regions)
        options = dict(flags.get("reader_option") or {})
        options["regions"] = os.path.abspath(regions)
        flags = {**flags, "reader_option": options}
    for name, value in flags.items():
        if value is None or name not in CONFIG_PATHS:
            continue
        *parents, leaf = CONFIG_PATHS[name]
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def parse_reader_options(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str] | None:
    """``("separator=_", ...)`` -> ``{"separator": "_"}``; None when none were given."""
    if not values:
        return None
    out: dict[str, str] = {}
    for value in values:
        name, equals, setting = value.partition("=")
        if not equals or not name.strip():
            raise click.BadParameter(f"'{value}' is not KEY=VALUE, e.g. separator=_", ctx, param)
        out[name.strip()] = setting
    return out


def data_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    from unisal.config import DECODERS, PIXEL_CACHES

    for option in reversed(
        [
            click.option(
                "--data",
                type=click.Path(),
                help="Image folder, flat prefix folder, CSV path,label, MedMNIST .npz, or JSON label files.",
            ),
            click.option(
                "--groups", type=click.Path(), help="CSV path,group: splits never separate a group."
            ),
            click.option(
                "--format", type=RegistryChoice(names_of("data format"), "data format"), help="Data layout."
            ),
            click.option(
                "--reader-option",
                multiple=True,
                callback=parse_reader_options,
                metavar="KEY=VALUE",
                help="An option of the data's reader, e.g. separator=_ (prefix) or label_column=class (csv); repeatable.",
            ),
            click.option(
                "--regions",
                type=click.Path(exists=True),
                help="With a tile table as --data: labels from QuPath GeoJSON regions (a file, or a folder of <slide>.geojson).",
            ),
            click.option("--image-size", type=int, help="Side of the decoded square images (px)."),
            click.option(
                "--val-size",
                type=int,
                help="Labelled images for model selection, counted as n_val (default 0: none, a fixed schedule).",
            ),
            click.option(
                "--skip-bad-images", is_flag=True, default=None, help="Skip unreadable files and list them."
            ),
            click.option("--cache-dir", type=click.Path(), help="Decoded-image cache (default: user cache)."),
            click.option(
                "--pixel-cache",
                type=click.Choice(PIXEL_CACHES),
                help="keep: decode every image once into the cache; stream: decode as read, no cache "
                "(frozen learner); auto: stream where the learner can and the cache would exceed 8 GB.",
            ),
            click.option(
                "--decoder",
                type=click.Choice(DECODERS),
                help="pil: decode on the CPU; device: streamed JPEG files decoded in batches on the "
                "extraction device (nvJPEG on CUDA).",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def feature_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The frozen learner's multi-view feature cache."""
    from unisal.config import FEATURE_ENGINES, VIEW_SETS

    for option in reversed(
        [
            click.option(
                "--views",
                type=click.Choice(list(VIEW_SETS)),
                help="Cached views per image: d8 = 8 flips/rotations, rot4, identity.",
            ),
            click.option(
                "--crops", type=int, help="Extra seeded random resized crops per image in the cache."
            ),
            click.option(
                "--feature-engine",
                type=click.Choice(list(FEATURE_ENGINES)),
                help="What runs the backbone for the cache: auto (OpenVINO on a CPU, else PyTorch), torch, openvino.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def executor_options(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--executor local|ray`` and ``--address``; ``what``: what Ray runs, for the help."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option(
            "--address",
            help="With --executor ray: the Ray cluster to join (default: a running one, else a local instance).",
        )(fn)
        return click.option(
            "--executor",
            type=click.Choice(["local", "ray"]),
            default="local",
            show_default=True,
            help=f"local: this process; ray: {what} (pip install 'unisal[ray]').",
        )(fn)

    return decorate


def predict_views_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    from unisal.config import PREDICT_VIEWS

    return click.option(
        "--predict-views",
        "--score-views",  # its spelling before issue 16: "score" is what strategies give items
        "predict_views",
        type=click.Choice(list(PREDICT_VIEWS)),
        help="Frozen learner: predict on the view-averaged features (mean), every view's outputs averaged (tta), or the image as is (first).",
    )(fn)


def learner_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option(
                "--learner",
                type=RegistryChoice(names_of("learner"), "learner"),
                help="finetune (train the backbone), frozen (heads on cached features), or another registered learner.",
            ),
            click.option("--networks", type=click.IntRange(1, 2), help="Networks whose logits are averaged."),
        ]
    ):
        fn = option(fn)
    return feature_options(predict_views_option(fn))


def model_train_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    from unisal.config import LABELLED_SAMPLING

    for option in reversed(
        [
            click.option(
                "--backbone", help="Any timm model name, hf-hub:org/name, or uni, virchow2, h-optimus-0."
            ),
            click.option("--pretrained/--no-pretrained", default=None, help="Start from ImageNet weights."),
            click.option("--weights", help="Local checkpoint path or http(s) URL of backbone weights."),
            click.option(
                "--drop-rate", type=float, help="Dropout before the classifier (bald uses it for MC dropout)."
            ),
            click.option("--epochs", type=int, help="Epochs per round."),
            click.option("--steps-per-epoch", type=int, help="Optimiser steps per epoch."),
            click.option("--batch-size", type=int, help="Images per step (half labelled when co-training)."),
            click.option("--lr", type=float, help="SGD learning rate."),
            click.option(
                "--labelled-sampling",
                type=click.Choice(list(LABELLED_SAMPLING)),
                help="Labelled images per batch: uniform (each image equally often) or balanced (each class).",
            ),
            click.option("--seed", type=int, help="Seeds splits, initial set, weights and batches."),
            click.option("--device", help="auto, cpu, cuda or cuda:N."),
            click.option(
                "--threads", type=int, help="CPU threads (default: the cores other processes leave free)."
            ),
        ]
    ):
        fn = option(fn)
    return fn


def strategy_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--strategy",
        type=RegistryChoice(names_of("strategy"), "strategy"),
        help="Query strategy (default: unisal).",
    )(fn)


def mode_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    from unisal.config import LEARNER_MODES

    return click.option(
        "--mode",
        type=click.Choice(list(LEARNER_MODES)),
        help="cotrain: UniSAL's two networks with unlabelled data; supervised: labelled data only.",
    )(fn)


def preset_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    from unisal.config import PRESETS

    return click.option(
        "--preset", type=click.Choice(list(PRESETS)), default=None, help="Named defaults (cpu)."
    )(fn)


def resolve_config(config_file: str | None, preset: str | None, flags: dict[str, Any]) -> Any:
    """Preset, then ``--config`` YAML, then flags; the data path is required."""
    from unisal.config import ConfigError, absolute_paths, load_yaml
    from unisal.settings import resolve_config as build_config

    file_values = load_yaml(config_file) if config_file else {}
    preset_name = preset or file_values.pop("preset", None) or "cpu"
    file_values.pop("preset", None)
    cfg = build_config(preset_name, file_values, overrides_from_flags(flags))
    if not cfg.data.path:
        raise ConfigError("no data given: pass --data PATH or set data.path in --config")
    return absolute_paths(cfg)


def parse_params(items: tuple[str, ...], *, scoped: bool) -> dict[str, Any]:
    """``KEY=VALUE`` (or, ``scoped``, ``STRATEGY.KEY=VALUE``) -> nested dict; values read as YAML."""
    import yaml

    from unisal.config import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        key, eq, text = item.partition("=")
        scope, dot, leaf = key.partition(".") if scoped else ("", "", key)
        if not eq or not leaf.strip() or (scoped and not (dot and scope.strip())):
            form = "STRATEGY.KEY=VALUE" if scoped else "KEY=VALUE"
            raise ConfigError(
                f"--param '{item}': expected {form}, e.g. {'bald.' if scoped else ''}mc_samples=10"
            )
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--param '{item}': cannot read the value ({exc})") from exc
        target = out.setdefault(scope.strip(), {}) if scoped else out
        target[leaf.strip()] = value
    return out
