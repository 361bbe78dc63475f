"""``unisal simulate``: a simulated active-learning experiment on a labelled data set."""

from __future__ import annotations

import os
from typing import Any

import click

from unisal.cli.options import (
    data_options,
    learner_options,
    mode_option,
    model_train_options,
    parse_params,
    preset_option,
    resolve_config,
    strategy_option,
)
from unisal.cli.reporting import reporting
from unisal.errors import UnisalError


@click.command()
@click.option("--config", "config_file", type=click.Path(), help="YAML config; flags override it.")
@preset_option
@data_options
@learner_options
@mode_option
@model_train_options
@click.option("--initial", type=int, help="Randomly chosen labelled images before round 1.")
@click.option("--budget", type=int, help="Images queried per round.")
@click.option("--rounds", type=int, help="Query rounds (the model is trained rounds + 1 times).")
@strategy_option
@click.option("--param", "params", multiple=True, help="A strategy hyper-parameter KEY=VALUE (repeatable).")
@click.option(
    "--pool-subset", type=int, help="Score only a random subset of this size of the pool per round."
)
@click.option("--out", type=click.Path(), help="Output folder.")
@click.option("--resume", is_flag=True, help="Continue the run in --out where it stopped.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def simulate(
    config_file: str | None,
    preset: str | None,
    resume: bool,
    quiet: bool,
    params: tuple[str, ...],
    **flags: Any,
) -> None:
    """Run UniSAL (or another strategy) with oracle labels and write curves and queries to --out."""
    from unisal.loop import ActiveLearningRun

    try:
        cfg = resolve_config(config_file, preset, flags)
        cfg.query.params.update(parse_params(params, scoped=False))
        with reporting(bars=not quiet):
            results = ActiveLearningRun(cfg, resume=resume).run()
    except UnisalError as error:
        raise click.ClickException(str(error)) from error
    last = results[-1]
    click.echo(
        f"done: {last['n_labeled']} labels, test accuracy {last['accuracy']:.4f}, "
        f"macro F1 {last['macro_f1']:.4f}; results in {os.path.relpath(cfg.out)}/rounds.csv"
    )
