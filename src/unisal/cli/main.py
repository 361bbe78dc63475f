"""``unisal`` command line: one module per sub-command, heavy imports deferred."""

from __future__ import annotations

import click

from unisal import __version__
from unisal.cli.benchmark import benchmark, report
from unisal.cli.cache import cache
from unisal.cli.data import data
from unisal.cli.features import features
from unisal.cli.maps import heatmap, shares
from unisal.cli.predict import export_model, predict
from unisal.cli.project import project
from unisal.cli.serve import serve
from unisal.cli.simulate import simulate
from unisal.cli.supervised import supervised
from unisal.cli.tiles import tiles


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="unisal")
def cli() -> None:
    """UniSAL: semi-supervised active learning for histopathology patches."""


cli.add_command(simulate)
cli.add_command(features)
cli.add_command(supervised)
cli.add_command(benchmark)
cli.add_command(report)
cli.add_command(data)
cli.add_command(cache)
cli.add_command(project)
cli.add_command(serve)
cli.add_command(predict)
cli.add_command(export_model)
cli.add_command(tiles)
cli.add_command(heatmap)
cli.add_command(shares)
