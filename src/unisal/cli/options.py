"""Options shared by sub-commands, and the flag -> config mapping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

# flag name -> path in RunConfig
CONFIG_PATHS: dict[str, tuple[str, ...]] = {
    "data": ("data", "path"),
    "groups": ("data", "groups"),
    "format": ("data", "format"),
    "image_size": ("data", "image_size"),
    "skip_bad_images": ("data", "skip_bad_images"),
    "cache_dir": ("data", "cache_dir"),
    "backbone": ("model", "backbone"),
    "pretrained": ("model", "pretrained"),
    "weights": ("model", "weights"),
    "epochs": ("train", "epochs"),
    "steps_per_epoch": ("train", "steps_per_epoch"),
    "batch_size": ("train", "batch_size"),
    "lr": ("train", "lr"),
    "strategy": ("query", "strategy"),
    "budget": ("query", "budget"),
    "pool_subset": ("query", "pool_subset"),
    "initial": ("initial",),
    "rounds": ("rounds",),
    "seed": ("seed",),
    "device": ("device",),
    "out": ("out",),
}


def overrides_from_flags(flags: dict[str, Any]) -> dict[str, Any]:
    """Nested dict of the flags the user actually gave (None means 'not given')."""
    nested: dict[str, Any] = {}
    for name, value in flags.items():
        if value is None or name not in CONFIG_PATHS:
            continue
        *parents, leaf = CONFIG_PATHS[name]
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def data_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option(
                "--data", type=click.Path(), help="Image folder, flat prefix folder, or CSV path,label."
            ),
            click.option(
                "--groups", type=click.Path(), help="CSV path,group: splits never separate a group."
            ),
            click.option(
                "--format", type=click.Choice(["auto", "folder", "prefix", "csv"]), help="Data layout."
            ),
            click.option("--image-size", type=int, help="Side of the decoded square images (px)."),
            click.option(
                "--skip-bad-images", is_flag=True, default=None, help="Skip unreadable files and list them."
            ),
            click.option("--cache-dir", type=click.Path(), help="Decoded-image cache (default: user cache)."),
        ]
    ):
        fn = option(fn)
    return fn


def model_train_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option("--backbone", help="Any timm model name."),
            click.option("--pretrained/--no-pretrained", default=None, help="Start from ImageNet weights."),
            click.option("--weights", help="Local checkpoint path or http(s) URL of backbone weights."),
            click.option("--epochs", type=int, help="Epochs per round."),
            click.option("--steps-per-epoch", type=int, help="Optimiser steps per epoch."),
            click.option("--batch-size", type=int, help="Images per step (half labelled when co-training)."),
            click.option("--lr", type=float, help="SGD learning rate."),
            click.option("--seed", type=int, help="Seeds splits, initial set, weights and batches."),
            click.option("--device", help="auto, cpu, cuda or cuda:N."),
        ]
    ):
        fn = option(fn)
    return fn
