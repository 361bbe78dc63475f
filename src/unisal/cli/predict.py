"""``unisal predict`` and ``unisal export-model``: use a labelling project's latest model."""

from __future__ import annotations

import click

from unisal.cli.reporting import reporting
from unisal.errors import UnisalError


@click.command()
@click.option("--project", "folder", required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--images", required=True, type=click.Path(exists=True, file_okay=False), help="Folder of images."
)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="CSV to write.")
@click.option("--progress", "show_progress", is_flag=True, help="Progress bars.")
def predict(folder: str, images: str, out: str, show_progress: bool) -> None:
    """Classify every image under --images with the project's latest model: class, confidence, agreement."""
    from unisal.app.export import predict_folder

    try:
        with reporting(steps=show_progress):
            n = predict_folder(folder, images, out)
    except UnisalError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{n} predictions written to {out}")


@click.command("export-model")
@click.option("--project", "folder", required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="File to write (torch.export; e.g. model.pt2).",
)
def export_model(folder: str, out: str) -> None:
    """Save the project's latest model as one torch.export file (class names inside), usable without unisal."""
    from unisal.app.export import export_model as export

    try:
        with reporting():
            info = export(folder, out)
    except UnisalError as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"round {info['round']}'s model written to {out}: {len(info['class_names'])} classes, input {info['input']}"
    )
