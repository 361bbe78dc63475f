"""``unisal benchmark`` and ``unisal report``: multi-seed strategy comparisons."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click

from unisal.cli.options import (
    data_options,
    executor_options,
    feature_options,
    model_train_options,
    parse_params,
    predict_views_option,
    preset_option,
    resolve_config,
)
from unisal.cli.reporting import reporting
from unisal.errors import UnisalError


def command_line(ctx: click.Context) -> str:
    """The command as the user gave it: every option set on the command line, in a fixed order."""
    from click.core import ParameterSource

    words = ["unisal", ctx.info_name or "benchmark"]
    for param in ctx.command.params:
        name = param.name or ""
        if (
            ctx.get_parameter_source(name) != ParameterSource.COMMANDLINE
            or not isinstance(param, click.Option)
            or name in NOT_SETTINGS
        ):
            continue
        value = ctx.params[name]
        flag = param.opts[0] if value is not False or not param.secondary_opts else param.secondary_opts[0]
        words += [flag] if param.is_flag else [flag, shlex.quote(str(value))]
    return " ".join(words)


NOT_SETTINGS = ("executor", "address")  # where it ran, not what: left out of settings.md

DEFAULT_STRATEGIES = "random,entropy,margin,bald,coreset,badge,typiclust,unisal,dus_random,cs_only"


@click.command()
@click.option("--config", "config_file", type=click.Path(), help="YAML config; flags override it.")
@preset_option
@data_options
@feature_options
@predict_views_option
@model_train_options
@click.option(
    "--strategies",
    default=DEFAULT_STRATEGIES,
    show_default=True,
    help="Comma-separated strategies; STRATEGY@LEARNER[:MODE] pins a learner (e.g. unisal@frozen:supervised), "
    "+RECIPE adds named settings (e.g. unisal+v1: UniSAL as trained before issue 15).",
)
@click.option(
    "--learners",
    default=None,
    help="Comma-separated LEARNER[:MODE] run with every unpinned strategy (default: the preset's, cotrain).",
)
@click.option(
    "--param", "params", multiple=True, help="A strategy hyper-parameter STRATEGY.KEY=VALUE (repeatable)."
)
@click.option("--seeds", default="0-4", show_default=True, help="Seeds: 0-4, or 0,2,5.")
@click.option("--initial", type=int, help="Randomly chosen labelled images before round 1.")
@click.option("--budget", type=int, help="Images queried per round.")
@click.option("--rounds", type=int, help="Query rounds (the model is trained rounds + 1 times).")
@click.option(
    "--pool-subset", type=int, help="Score only a random subset of this size of the pool per round."
)
@click.option("--no-reference", is_flag=True, help="Skip the full-supervision reference.")
@click.option(
    "--reference-passes",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Passes over all pool labels of the full-supervision reference.",
)
@click.option(
    "--main-metric",
    type=click.Choice(["accuracy", "macro_f1", "balanced_accuracy"]),
    default="accuracy",
    show_default=True,
    help="What summary.md orders the arms by and compares them on (macro_f1 for imbalanced classes).",
)
@click.option("--out", required=True, type=click.Path(), help="Benchmark folder (resumable).")
@executor_options("each run a Ray task")
@click.option("--progress", "show_progress", is_flag=True, help="Progress bars inside each run.")
def benchmark(
    config_file: str | None,
    preset: str | None,
    strategies: str,
    learners: str | None,
    seeds: str,
    params: tuple[str, ...],
    no_reference: bool,
    reference_passes: int,
    main_metric: str,
    out: str,
    executor: str,
    address: str | None,
    show_progress: bool,
    **flags: Any,
) -> None:
    """Compare strategies (x learners) over seeds on one data set: results.csv, summary.md, curves."""
    from unisal.benchmark import Benchmark, BenchmarkPlan, LearnerSpec, parse_arms, parse_seeds

    try:
        base = resolve_config(config_file, preset, {**flags, "out": out})
        base.data.path = str(Path(base.data.path).resolve())
        if base.data.groups:
            base.data.groups = str(Path(base.data.groups).resolve())
        default = LearnerSpec(base.learner.name, base.learner.mode)
        learner_specs = (
            [LearnerSpec.parse(x) for x in learners.split(",") if x.strip()] if learners else [default]
        )
        plan = BenchmarkPlan(
            base=base,
            arms=parse_arms(strategies, learner_specs),
            seeds=parse_seeds(seeds),
            out=Path(out),
            default_learner=learner_specs[0],
            reference=not no_reference,
            reference_passes=reference_passes,
            main_metric=main_metric,
            params=parse_params(params, scoped=True),
            command=command_line(click.get_current_context()),
        )
        # the caches' bars always, the runs' own bars with --progress; no per-round lines
        with reporting(steps=show_progress, topics={"general"}):
            summary = Benchmark(plan, executor=executor, address=address).run()
    except UnisalError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"done: {summary}, {Path(out) / 'curves.png'}")


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
def report(folder: str) -> None:
    """Rebuild summary.md and curves.png/.svg of a benchmark FOLDER from its results.csv."""
    from unisal.benchmark import write_report

    try:
        summary = write_report(folder)
    except UnisalError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"written: {summary}, {Path(folder) / 'curves.png'}, {Path(folder) / 'curves.svg'}")
