"""``unisal supervised``: reference models on the same split as an AL run."""

from __future__ import annotations

from typing import Any

import click

from unisal.cli.options import (
    RegistryChoice,
    feature_options,
    model_train_options,
    names_of,
    overrides_from_flags,
    predict_views_option,
)
from unisal.cli.reporting import reporting
from unisal.errors import UnisalError


@click.command()
@click.option(
    "--run",
    "run_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="A `unisal simulate` output folder: its data, split and settings are reused.",
)
@click.option(
    "--labels",
    type=click.Choice(["run", "all"]),
    default="run",
    show_default=True,
    help="run: the images the run had labelled at --round; all: the whole training pool.",
)
@click.option("--round", "round_", type=int, default=None, help="Round of the run (default: its last).")
@click.option(
    "--learner",
    type=RegistryChoice(names_of("learner"), "learner"),
    help="A registered learner, finetune or frozen (default: the run's learner).",
)
@click.option(
    "--networks",
    type=click.IntRange(1, 2),
    help="Networks whose logits are averaged (default: the run's, 2: as fair as the co-trained pair).",
)
@feature_options
@predict_views_option
@model_train_options
@click.option("--out", required=True, type=click.Path(), help="Output folder for metrics.json.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def supervised(run_dir: str, labels: str, round_: int | None, out: str, quiet: bool, **flags: Any) -> None:
    """Train with cross-entropy on labelled images only; evaluate on the run's test split."""
    from unisal.reference import train_supervised_reference

    try:
        with reporting(bars=not quiet):
            result = train_supervised_reference(run_dir, labels, round_, out, overrides_from_flags(flags))
    except UnisalError as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"done: {result['n_labeled']} labels, {result['networks']} network(s), test accuracy "
        f"{result['accuracy']:.4f}, macro F1 {result['macro_f1']:.4f}; results in {out}/metrics.json"
    )
