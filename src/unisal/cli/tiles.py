"""``unisal tiles``: cut whole-slide images into a tile table (tissue only), for simulations,
benchmarks and labelling projects; its tiling options are shared with ``project init --slides``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from unisal.cli.reporting import reporting
from unisal.errors import UnisalError

TILING_OPTIONS = [
    click.option(
        "--tile-size", type=click.IntRange(16, 4096), default=224, show_default=True, help="Tile side (px)."
    ),
    click.option("--mpp", type=click.FloatRange(min=0.01), help="Microns per tile pixel (default 0.5)."),
    click.option(
        "--magnification",
        type=click.FloatRange(min=0.1),
        help="Objective magnification instead (20 = 0.5 mpp).",
    ),
    click.option(
        "--tissue-threshold",
        type=click.FloatRange(0.0, 1.0),
        default=0.5,
        show_default=True,
        help="Least tissue fraction of a kept tile.",
    ),  # fmt: skip
    click.option(
        "--assume-mpp", type=click.FloatRange(min=0.01), help="Resolution of slides that record none."
    ),
    click.option(
        "--slides-csv", type=click.Path(), help="CSV slide,patient: tiles of one patient form one group."
    ),
]


def tiling_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(TILING_OPTIONS):
        command = option(command)
    return command


def tiling_settings(
    *, tile_size: int, mpp: float | None, magnification: float | None, tissue_threshold: float,
    assume_mpp: float | None,
) -> Any:  # fmt: skip
    """The options' TilingSettings (0.5 mpp unless a resolution is given)."""
    from unisal.data.tiling import TilingSettings

    if mpp is not None and magnification is not None:
        raise click.UsageError("give --mpp or --magnification, not both")
    return TilingSettings(
        size=tile_size,
        mpp=mpp if mpp is not None or magnification is not None else 0.5,
        magnification=magnification,
        tissue_threshold=tissue_threshold,
        assume_mpp=assume_mpp,
    )


@click.command()
@click.argument("slides", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="The tile table to write (CSV).")
@tiling_options
@click.option("--masks", type=click.Path(), help="Folder for a picture of each slide's tissue mask.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def tiles(
    slides: tuple[str, ...],
    out: str,
    tile_size: int,
    mpp: float | None,
    magnification: float | None,
    tissue_threshold: float,
    assume_mpp: float | None,
    slides_csv: str | None,
    masks: str | None,
    quiet: bool,
) -> None:
    """Find the tissue of every slide (files or folders) and list its tiles in a table."""
    from unisal.data.tiling import peak_rss_mb, read_patients, tile_slides
    from unisal.io import check_output_file

    settings = tiling_settings(
        tile_size=tile_size, mpp=mpp, magnification=magnification, tissue_threshold=tissue_threshold,
        assume_mpp=assume_mpp,
    )  # fmt: skip
    start = time.perf_counter()
    try:
        check_output_file(out)
        patients = read_patients(slides_csv) if slides_csv else None
        with reporting(bars=not quiet):
            counts = tile_slides(list(slides), out, settings, patients=patients, masks=masks)
    except UnisalError as error:
        raise click.ClickException(str(error)) from error
    for slide, n in counts.items():
        click.echo(f"{slide}: {n} tiles")
    click.echo(
        f"{sum(counts.values())} tiles of {len(counts)} slide(s) -> {out} "
        f"({time.perf_counter() - start:.1f} s, peak memory {peak_rss_mb():.0f} MB)"
    )
