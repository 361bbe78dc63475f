"""``unisal data``: list, download and verify public histopathology data sets."""

from __future__ import annotations

import click

from unisal.cli.reporting import reporting
from unisal.errors import UnisalError

ROOT_HELP = "Where data sets live (default: $UNISAL_DATA, else ~/.cache/unisal/datasets)."


@click.group()
def data() -> None:
    """Public data sets: list, download (resumable, checksummed) and verify."""


@data.command("list")
@click.option("--root", type=click.Path(file_okay=False), help=ROOT_HELP)
def list_(root: str | None) -> None:
    """Every known data set, its size and whether it is here."""
    from unisal.datasets import data_home, dataset_names, dataset_status, get_dataset

    click.echo(f"data sets in {data_home(root)}:")
    for name in dataset_names():
        spec = get_dataset(name)
        click.echo(f"  {name:<16} {dataset_status(spec, root):<15} {spec.description}")


@data.command()
@click.argument("name")
@click.option("--root", type=click.Path(file_okay=False), help=ROOT_HELP)
@click.option("--keep-archive", is_flag=True, help="Keep the downloaded archive after extraction.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def download(name: str, root: str | None, keep_archive: bool, quiet: bool) -> None:
    """Download data set NAME, check its published MD5 and extract it; run again to resume."""
    from unisal.datasets import download_dataset, get_dataset

    try:
        spec = get_dataset(name)
        with reporting(bars=not quiet):
            path = download_dataset(spec, root, keep_archive=keep_archive)
    except UnisalError as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"done: --data {path}" + (f"  ({spec.licence}; cite: {spec.citation})" if spec.licence else "")
    )


@data.command()
@click.argument("name")
@click.option("--root", type=click.Path(file_okay=False), help=ROOT_HELP)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def verify(name: str, root: str | None, quiet: bool) -> None:
    """Check data set NAME: complete, the published number of images, checksums of kept files."""
    from unisal.datasets import get_dataset, verify_dataset

    try:
        with reporting(bars=not quiet):
            report = verify_dataset(get_dataset(name), root)
        click.echo(report)
    except UnisalError as error:
        raise click.ClickException(str(error)) from error
