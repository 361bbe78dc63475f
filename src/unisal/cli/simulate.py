"""``unisal simulate``: a simulated active-learning experiment on a labelled data set."""

from __future__ import annotations

from typing import Any

import click

from unisal.cli.options import data_options, model_train_options, overrides_from_flags


@click.command()
@click.option("--config", "config_file", type=click.Path(), help="YAML config; flags override it.")
@click.option("--preset", type=click.Choice(["cpu", "paper"]), default=None, help="Named defaults (cpu).")
@data_options
@model_train_options
@click.option("--initial", type=int, help="Randomly chosen labelled images before round 1.")
@click.option("--budget", type=int, help="Images queried per round.")
@click.option("--rounds", type=int, help="Query rounds (the model is trained rounds + 1 times).")
@click.option("--strategy", help="Query strategy: unisal, random, ...")
@click.option(
    "--pool-subset", type=int, help="Score only a random subset of this size of the pool per round."
)
@click.option("--out", type=click.Path(), help="Output folder.")
@click.option("--resume", is_flag=True, help="Continue the run in --out where it stopped.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def simulate(config_file: str | None, preset: str | None, resume: bool, quiet: bool, **flags: Any) -> None:
    """Run UniSAL (or another strategy) with oracle labels and write curves and queries to --out."""
    from unisal.config import ConfigError, build_config, load_yaml
    from unisal.data.catalogue import DataError
    from unisal.data.images import BadImageError
    from unisal.loop import ActiveLearningRun, RunError
    from unisal.models.backbones import WeightsError

    try:
        file_values = load_yaml(config_file) if config_file else {}
        preset_name = preset or file_values.pop("preset", None) or "cpu"
        file_values.pop("preset", None)
        cfg = build_config(preset_name, file_values, overrides_from_flags(flags))
        if not cfg.data.path:
            raise ConfigError("no data given: pass --data PATH or set data.path in --config")
        from unisal.query import strategy_names

        if cfg.query.strategy not in strategy_names():
            raise ConfigError(f"unknown strategy '{cfg.query.strategy}'; expected one of {strategy_names()}")
        run = ActiveLearningRun(cfg, resume=resume, progress=not quiet, log=click.echo)
        results = run.run()
    except (ConfigError, DataError, BadImageError, RunError, WeightsError) as error:
        raise click.ClickException(str(error)) from error
    last = results[-1]
    click.echo(
        f"done: {last['n_labeled']} labels, test accuracy {last['accuracy']:.4f}, "
        f"macro F1 {last['macro_f1']:.4f}; results in {cfg.out}/rounds.csv"
    )
