"""``unisal project``: a labelling project (init, status, export, import)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click

from unisal.cli.options import RegistryChoice, names_of, preset_option, strategy_option
from unisal.cli.reporting import reporting
from unisal.cli.tiles import tiling_options, tiling_settings
from unisal.errors import UnisalError


def _image_formats() -> tuple[str, ...]:
    from unisal.app.project import image_formats

    return image_formats()


def _label_exports() -> list[str]:
    from unisal.app.project import LABEL_EXPORTS

    return [*LABEL_EXPORTS, "geojson"]


def is_geojson(file: Path) -> bool:
    """A QuPath GeoJSON file (by its name, or a FeatureCollection / list of Features inside)."""
    import json

    if file.suffix.lower() == ".geojson":
        return True
    if file.suffix.lower() != ".json" or not file.is_file():
        return False
    try:
        data = json.loads(file.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return False
    first = data[0] if isinstance(data, list) and data else data
    return isinstance(first, dict) and first.get("type") in ("FeatureCollection", "Feature")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside: SIGTERM (``kill``, a scheduler's stop) raises ``KeyboardInterrupt("stopped by
    SIGTERM")``, so it takes Ctrl-C's path: the work in progress is recorded as stopped and
    cleaned up instead of dying half-way. Later SIGTERMs are ignored while that cleanup runs.
    Only the main thread receives signals: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt("stopped by SIGTERM")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.group()
def project() -> None:
    """A labelling project: the images, the labels so far, rounds and the queue (one SQLite file)."""


@project.command()
@click.argument("folder", type=click.Path(file_okay=False))
@click.option(
    "--images",
    type=click.Path(exists=True),
    help="The images (a folder; or CSV/npz with --format).",
)
@click.option(
    "--slides",
    type=click.Path(exists=True),
    help="Instead of --images: whole-slide images (a folder, or one slide), tiled on their tissue.",
)
@tiling_options
@click.option(
    "--classes",
    default=None,
    help='Class names in shortcut order, e.g. "TUM,STR,NORM" (default with a labelled --format: '
    "the layout's classes, e.g. the class folders in sorted order).",
)
@click.option(
    "--format",
    "fmt",
    type=RegistryChoice(_image_formats, "image layout"),
    default="unlabelled",
    show_default=True,
    help="unlabelled: every image under --images; other layouts seed labels from the layout.",
)
@click.option(
    "--labels", "labels_csv", type=click.Path(dir_okay=False), help="CSV path,label: labels to start from."
)
@click.option(
    "--groups",
    "groups_csv",
    type=click.Path(dir_okay=False),
    help="CSV path,group: keep groups in one split.",
)
@click.option(
    "--test", "test_csv", type=click.Path(dir_okay=False), help="CSV path,label: a labelled hold-out set."
)
@strategy_option
@click.option("--budget", type=click.IntRange(min=1), help="Images queued per round (default: 20).")
@click.option(
    "--tiles-per-slide",
    type=click.IntRange(min=0),
    help="With --slides: at most N queued tiles of one slide per round.",
)
@click.option(
    "--learner",
    type=RegistryChoice(names_of("learner"), "learner"),
    help="frozen (heads on cached features, the default) or finetune (train the backbone).",
)
@preset_option
def init(
    folder: str,
    images: str | None,
    slides: str | None,
    tile_size: int,
    mpp: float | None,
    magnification: float | None,
    tissue_threshold: float,
    assume_mpp: float | None,
    slides_csv: str | None,
    classes: str | None,
    fmt: str,
    labels_csv: str | None,
    groups_csv: str | None,
    test_csv: str | None,
    strategy: str | None,
    budget: int | None,
    tiles_per_slide: int | None,
    learner: str | None,
    preset: str | None,
) -> None:
    """Create a project in FOLDER from the images under --images, or the tiles of --slides."""
    from dataclasses import asdict

    from unisal.app.project import check_new_folder, create_project, plan_project
    from unisal.app.rounds import ProjectSettings
    from unisal.app.slide_project import plan_slide_project
    from unisal.data.tiling import read_patients

    if (images is None) == (slides is None):
        raise click.UsageError("give --images or --slides (one of them)")
    if slides is not None and (fmt != "unlabelled" or labels_csv or groups_csv):
        raise click.UsageError(
            "--format, --labels and --groups are for --images; label tiles with "
            "`unisal project import DIR regions.geojson` (and group slides with --slides-csv)"
        )
    tiling = tiling_settings(
        tile_size=tile_size, mpp=mpp, magnification=magnification, tissue_threshold=tissue_threshold,
        assume_mpp=assume_mpp,
    )  # fmt: skip

    chosen = {"strategy": strategy, "budget": budget, "preset": preset, "tiles_per_slide": tiles_per_slide}
    settings = ProjectSettings(**{k: v for k, v in chosen.items() if v is not None})  # type: ignore[arg-type]
    if learner is not None:
        settings.config = {"learner": {"name": learner}}

    names = None if classes is None else [c.strip() for c in classes.split(",") if c.strip()]
    try:
        settings.check()
        check_new_folder(folder)
        if slides is not None:
            with reporting(bars=True):
                plan = plan_slide_project(
                    folder, slides=slides, classes=names, tiling=tiling, test_csv=test_csv,
                    patients=read_patients(slides_csv) if slides_csv else None,
                )  # fmt: skip
        else:
            plan = plan_project(
                images=images or "",
                classes=names,
                fmt=fmt,
                labels_csv=labels_csv,
                groups_csv=groups_csv,
                test_csv=test_csv,
            )
        store = create_project(folder, plan, settings=asdict(settings))
    except UnisalError as error:
        raise click.ClickException(str(error)) from error
    for note in plan.notes:
        click.echo(note)
    counts = store.counts()
    click.echo(
        f"project {folder}: {counts['images'] + counts['test_images']} images "
        f"({counts['test_images']} held out for testing), {counts['labelled']} labelled"
        + (f" (+{counts['test_labelled']} held out)" if counts["test_labelled"] else "")
        + f", classes {', '.join(plan.classes)}"
    )


@project.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
def status(folder: str) -> None:
    """Labels per class, the queue, and the rounds with their metrics."""
    from unisal.app.project import open_project
    from unisal.app.schema import guard_message, stop_message  # light: status imports no torch

    try:
        store = open_project(folder)
        store.fail_stale_rounds()  # a round left "running" by a killed process says so
        counts, rounds = store.counts(), store.rounds()
    except UnisalError as error:
        raise click.ClickException(str(error)) from error
    held_out = (
        f" (+{counts['test_labelled']} held out of {counts['test_images']} held-out images)"
        if counts["test_images"]
        else ""
    )
    click.echo(
        f"{counts['images']} images, {counts['labelled']} labelled{held_out}, {counts['queue']} queued, "
        f"{counts['disagreements']} disagreements to review"
    )
    width = max(len(n) for n in counts["per_class"])
    for name, n in counts["per_class"].items():
        extra = f" (+{counts['test_per_class'][name]} held out)" if counts["test_images"] else ""
        click.echo(f"  {name:<{width}}  {n}{extra}")
    for r in rounds:
        not_listed = {
            "accuracy_low",
            "accuracy_high",
            "guard_kappa",
            "guard_share_ratio",
        }  # shown below or not at all
        values = r["metrics"] or {}
        metrics = ", ".join(
            f"{k} {v:.4f}" for k, v in values.items() if isinstance(v, float) and k not in not_listed
        )
        if "accuracy_low" in values:
            metrics += f", 95 % interval {values['accuracy_low']:.3f}-{values['accuracy_high']:.3f}"
        click.echo(
            f"round {r['id']}: {r['status']}, {r['n_labels']} labels"
            + (f", {metrics}" if metrics else "")
            + (f" ({r['error']})" if r["error"] else "")
        )
    done = [r for r in rounds if r["status"] == "done"]
    for message in (guard_message(done[-1]), stop_message(done[-1])) if done else ():
        if message:
            click.echo(message)


@project.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--format", "fmt", type=RegistryChoice(_label_exports, "export format"), default="csv", show_default=True
)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="File to write.")
@click.option("--slide", help="geojson: the slide to export (its name), where the project has several.")
def export(folder: str, fmt: str, out: str, slide: str | None) -> None:
    """Write every label as CSV or a Label Studio JSON export; or one slide's tiles as QuPath
    GeoJSON (labels as annotations, the latest model's predictions as detections)."""
    from unisal.app.project import export_labels, open_project
    from unisal.app.slide_project import export_geojson

    try:
        if fmt == "geojson":
            with reporting(steps=False):
                counts = export_geojson(folder, out, slide=slide)
            click.echo(
                f"{sum(counts.values())} tiles written to {out}: {counts['labelled']} labelled (annotations), "
                f"{counts['predicted']} predicted (detections), {counts['unclassified']} unclassified"
            )
            return
        if slide is not None:
            raise click.UsageError("--slide is for --format geojson")
        n = export_labels(open_project(folder), out, fmt)
    except UnisalError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{n} labels written to {out}")


@project.command("import")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--annotator", default="import", show_default=True, help="Whose labels these are.")
@click.option(
    "--slide",
    help="GeoJSON: the slide the regions were drawn on (default: the file's name, or the only one).",
)
@click.option(
    "--threshold", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.5, show_default=True,
    help="GeoJSON: least share of a tile's tissue a region must cover to label it.",
)  # fmt: skip
def import_(folder: str, file: str, annotator: str, slide: str | None, threshold: float) -> None:
    """Import labels from a CSV (path,label), a Label Studio JSON export, or QuPath GeoJSON region
    annotations (the tiles they cover): all or nothing."""
    from unisal.app.project import import_labels, open_project
    from unisal.app.slide_project import import_regions

    try:
        if is_geojson(Path(file)):
            report = import_regions(folder, file, slide=slide, threshold=threshold, annotator=annotator)
            for note in report.notes:
                click.echo(note)
            if report.conflicts:
                shown = "; ".join(f"{p} ({' and '.join(c)})" for p, c in list(report.conflicts.items())[:5])
                click.echo(
                    f"{len(report.conflicts)} tile(s) covered by regions of two classes, left unlabelled: {shown}"
                )
            click.echo(
                f"{report.slide}: {report.labelled} tiles labelled by regions ({report.changed} changed)"
            )
            return
        if slide is not None:
            raise click.UsageError("--slide is for GeoJSON region files")
        n = import_labels(open_project(folder), Path(file), annotator=annotator)
    except UnisalError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{n} labels imported")


@project.command("round")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--progress", "show_progress", is_flag=True, help="Progress bars.")
def round_(folder: str, show_progress: bool) -> None:
    """Train on the labels so far, report metrics, and queue the next batch to label."""
    from unisal.app.rounds import failure_reason, guard_message, run_round, stop_message

    try:
        with sigterm_as_interrupt(), reporting(steps=show_progress):
            record = run_round(folder)
    except UnisalError as error:
        raise click.ClickException(str(error)) from error
    except KeyboardInterrupt as stop:
        raise click.ClickException(
            f"round {failure_reason(stop)}; the labels, the model and the queue are as they were"
        ) from None
    metrics = record["metrics"] or {}
    shown = ", ".join(f"{k} {metrics[k]:.4f}" for k in ("accuracy", "macro_f1") if k in metrics)
    click.echo(
        f"round {record['id']}: {metrics.get('n_labels', 0)} labels"
        + (f", {shown} ({metrics['source']})" if shown else ", no metrics yet")
        + f"; {metrics.get('seconds', 0):.1f} s; "
        + (
            "next batch queued"
            if metrics.get("queued", 1)
            else "every pool image is labelled: nothing queued"
        )
    )
    for message in (guard_message(record), stop_message(record)):
        if message:
            click.echo(message)
