"""``unisal features``: build (or check) the multi-view feature cache that the frozen learner reads.

Benchmarks run it once, so that every run, strategy and seed on the data set shares one cache.
"""

from __future__ import annotations

from typing import Any

import click

from unisal.cli.options import data_options, executor_options, feature_options, preset_option, resolve_config
from unisal.cli.reporting import reporting
from unisal.errors import UnisalError


@click.command()
@click.option("--config", "config_file", type=click.Path(), help="YAML config; flags override it.")
@preset_option
@data_options
@feature_options
@click.option("--backbone", help="Any timm model name, hf-hub:org/name, or uni, virchow2, h-optimus-0.")
@click.option("--pretrained/--no-pretrained", default=None, help="Start from pretrained weights.")
@click.option("--weights", help="Local checkpoint path or http(s) URL of backbone weights.")
@click.option("--device", help="auto, cpu, cuda or cuda:N.")
@click.option("--threads", type=int, help="CPU threads (default: the cores other processes leave free).")
@executor_options("shards of images on Ray workers")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def features(
    config_file: str | None, preset: str | None, executor: str, address: str | None, quiet: bool, **flags: Any
) -> None:
    """Run the frozen backbone over every view of every image and cache the features."""
    from unisal.data.prepare import prepare_data
    from unisal.device import resolve_device
    from unisal.learners import learner_class
    from unisal.models.feature_cache import build_feature_cache
    from unisal.models.features import ViewSpec
    from unisal.models.ray_features import OnRay
    from unisal.threads import configure_threads

    try:
        cfg = resolve_config(config_file, preset, flags)
        learner_class("frozen").check(cfg)
        device = resolve_device(cfg.device)
        with reporting(bars=not quiet):
            configure_threads(cfg.threads)
            data = prepare_data(cfg.data, cfg.seed, pixels_needed=False)  # read once: may stream
            store = build_feature_cache(
                data.store,
                cfg.model,
                spec=ViewSpec.from_config(cfg.features),
                device=device,
                cache_dir=cfg.data.cache_dir,
                batch_size=cfg.features.batch_size,
                engine=cfg.features.engine,
                shard_images=cfg.features.shard_images,
                extractor=OnRay(address, threads=cfg.threads) if executor == "ray" else None,
            )
            # streamed pixels: the files that could not be read are known only now, as a run would say
            data.leave_out_unreadable(store.unreadable, skip=cfg.data.skip_bad_images)
    except UnisalError as error:
        raise click.ClickException(str(error)) from error
    info = store.info
    n_images, n_views, dim = info["shape"]
    speed = (
        f"{info['images_per_second']:.1f} images/s, {info['views_per_second']:.1f} views/s, {info['device']}"
        + (f", {info['engine']}, {info['threads']} threads" if "engine" in info else "")
        + (" per worker, on Ray" if info.get("executor") == "ray" else "")
        if info.get("images_per_second")
        else "assembled from shards written earlier"
    )
    built = (
        f"{'reused, built earlier' if info.get('reused') else 'built'} in {info['seconds']:.0f} s ({speed})"
    )
    click.echo(
        f"feature cache: {n_images} images x {n_views} views ({info['views']}) x {dim} features "
        f"of {info['backbone']} at {info['image_size']} px; {built}"
    )
