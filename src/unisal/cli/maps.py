"""``unisal heatmap`` and ``unisal shares``: a slide's tiles as the latest model sees them (a
picture over the thumbnail), and per slide the share of tissue in each predicted class (CSV)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from unisal.cli.reporting import reporting
from unisal.errors import UnisalError

SOURCE = [
    click.option(
        "--project", type=click.Path(exists=True, file_okay=False), help="A labelling project on slides."
    ),
    click.option(
        "--run",
        "run_dir",
        type=click.Path(exists=True, file_okay=False),
        help="A simulation run on a tile table.",
    ),
]


def check_out(out: str, project: str | None) -> None:
    """``out`` can be written, and is none of a project's own files."""
    from unisal.app.project import open_project, protected_outputs
    from unisal.io import check_output_file

    check_output_file(out, protected=protected_outputs(project, open_project(project)) if project else None)


def source_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(SOURCE):
        command = option(command)
    return command


@click.command()
@source_options
@click.option("--slide", required=True, help="The slide: its file name without extension.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The picture to write (PNG).")
def heatmap(project: str | None, run_dir: str | None, slide: str, out: str) -> None:
    """Draw the predicted class of every tile of a slide, and the query score with the tiles
    labelled and queued, over the slide's thumbnail."""
    from unisal.app.map_sources import model_view
    from unisal.app.slidemap import class_shares, find_slide, save_map, slide_maps

    if not out.lower().endswith(".png"):
        raise click.UsageError(f"--out {out}: the map is a PNG picture; name it .png")
    try:
        check_out(out, project)
        with reporting(steps=False):
            view = model_view(project=project, run=run_dir)
            (m,) = slide_maps(view, [find_slide(view.ids, slide)])
            save_map(m, out)
    except UnisalError as error:
        raise click.ClickException(str(error)) from error
    shares = ", ".join(f"{name} {share:.0%}" for name, share in class_shares(m).items())
    click.echo(f"{m.name}: {len(m.boxes)} tiles ({shares} of tissue) -> {out}")


@click.command()
@source_options
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The CSV to write.")
def shares(project: str | None, run_dir: str | None, out: str) -> None:
    """Per slide, the share of its tissue in each predicted class (CSV: slide, class, tiles,
    tissue_share, tissue_mm2)."""
    from unisal.app.map_sources import model_view
    from unisal.app.slidemap import SHARE_COLUMNS, shares_rows, slide_maps, slides_in
    from unisal.io import write_csv_atomic

    try:
        check_out(out, project)
        with reporting(steps=False):
            view = model_view(project=project, run=run_dir)
            slides = slides_in(view.ids)
            if not slides:
                raise click.ClickException("these items are not tiles of slides: no slide to sum over")
            maps = slide_maps(view, list(slides.values()))
            write_csv_atomic(out, SHARE_COLUMNS, shares_rows(maps))
    except UnisalError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{len(maps)} slide(s), {len(view.class_names)} classes -> {out}")
