"""A labelling project on disk: ``DIR/project.db`` (the store) and ``DIR/rounds/`` (checkpoints).

``init_project`` reads the images (any reader layout, or every image file under a folder),
hashes them, seeds labels from the layout or a CSV, marks an optional labelled hold-out (with
every image of its groups), and creates the database; ``check_images`` finds the images changed
since; ``export_labels`` and ``import_labels`` speak CSV and Label Studio JSON.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unisal.app.exchange import (
    IMPORTER,
    LABEL_EXPORTS,
    export_labels,
    import_labels,
    label_studio_config,
    read_label_csv,
    read_label_studio,
)
from unisal.app.files import (
    NOT_REGULAR,
    FileState,
    check_images,
    examples,
    file_stamp,
    file_state,
    file_states,
    project_db,
    protected_outputs,
    sha256_of,
)
from unisal.app.store import DB_NAME, ProjectError, ProjectStore, check_class_names, damaged
from unisal.data.cache import join_identical
from unisal.data.catalogue import Catalogue, DataError, attach_groups
from unisal.data.images import is_image_file
from unisal.data.items import FileItems
from unisal.data.readers import READERS, load_catalogue

SHOWN = 5  # offenders named in an error message


def open_project(folder: str | Path) -> ProjectStore:
    db = project_db(folder)
    if not db.is_file():
        raise ProjectError(
            f"{folder} holds no unisal project (no {DB_NAME}); create one with `unisal project init`"
        )
    store = ProjectStore.open(db)
    if "image_root" not in store.settings():
        raise damaged(db)
    return store


def read_images(images: str | Path, fmt: str) -> Catalogue:
    """``fmt`` ``unlabelled``: every image file under ``images`` (recursively), no labels; any
    other format: that reader, whose labels seed the project."""
    root = Path(images).resolve()
    if fmt != "unlabelled":
        return load_catalogue(root, fmt)
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    paths = sorted(str(p) for p in root.rglob("*") if p.is_file() and is_image_file(p))
    if not paths:
        raise DataError(f"no images found under {root}")
    return Catalogue(
        FileItems(tuple(paths)), np.full(len(paths), -1, np.int64), np.arange(len(paths)), [], str(root)
    )


# ---- creating a project
@dataclass
class ProjectPlan:
    """Everything ``project init`` will write, checked: nothing is on disk yet.

    Attributes:
        root: the image root (absolute); image paths are relative to it.
        classes: the class names, in shortcut order.
        images: ``(path, sha256, bytes, group, split, file stamp)`` rows (the stamp goes in
            the ``mtime_ns`` column; see :func:`file_stamp`).
        labels: ``(path, class name)`` labels to start from.
        notes: what init decided that the user should hear (images moved to the hold-out, ...).
    """

    root: str
    classes: list[str]
    images: list[tuple[str, str, int, str, str, int]]
    labels: list[tuple[str, str]]
    notes: list[str] = field(default_factory=list)
    tile_table: str | None = None  # the tiles of a project on slides: kept as DIR/tiles.csv


def _check_label_rows(
    what: str, rows: list[tuple[str, str]], known: set[str], classes: list[str], root: str
) -> None:
    seen: dict[str, str] = {}
    conflicts = sorted({p for p, c in rows if seen.setdefault(p, c) != c})
    if conflicts:
        raise ProjectError(
            f"{what}: {len(conflicts)} image(s) with two different labels, e.g. {conflicts[0]}"
        )
    unknown_paths = [p for p, _ in rows if p not in known]
    unknown_classes = sorted({c for _, c in rows if c not in classes})
    if unknown_paths or unknown_classes:
        parts = []
        if unknown_paths:
            parts.append(f"{len(unknown_paths)} image(s) not under {root}, e.g. {unknown_paths[0]}")
        if unknown_classes:
            parts.append(f"class(es) {unknown_classes[:5]} not among --classes {classes}")
        raise ProjectError(f"{what}: " + "; ".join(parts))


def held_out_splits(groups: np.ndarray, is_test: np.ndarray) -> np.ndarray:
    """``test`` for every image of a group that holds a --test image, else ``train`` (N,): a
    group is held out whole or not at all, so no copy or group-mate of a test image is queried
    or trained on."""
    held = np.isin(groups, np.unique(groups[is_test]))
    return np.where(held, "test", "train")


def plan_project(
    *,
    images: str | Path,
    classes: list[str] | None,
    fmt: str = "unlabelled",
    labels_csv: str | Path | None = None,
    groups_csv: str | Path | None = None,
    test_csv: str | Path | None = None,
    workers: int = 4,
) -> ProjectPlan:
    """Read, check and hash everything ``init_project`` writes; see there for the arguments."""
    if classes is None and fmt == "unlabelled":
        raise ProjectError(
            "--classes is needed with --format unlabelled (the images carry no class names), "
            'e.g. --classes "TUM,STR,NORM"'
        )
    if classes is not None:
        check_class_names(classes)
    return plan_catalogue(
        read_images(images, fmt), classes=classes, labels_csv=labels_csv, groups_csv=groups_csv,
        test_csv=test_csv, workers=workers,
    )  # fmt: skip


def plan_catalogue(
    catalogue: Catalogue,
    *,
    classes: list[str] | None,
    labels_csv: str | Path | None = None,
    groups_csv: str | Path | None = None,
    test_csv: str | Path | None = None,
    workers: int = 4,
) -> ProjectPlan:
    """The plan of a project of ``catalogue``'s items (images, or tiles of slides)."""
    classes = list(catalogue.class_names) if classes is None else classes
    check_class_names(classes)
    if groups_csv:
        catalogue = attach_groups(catalogue, groups_csv)
    relative = [catalogue.relative(i) for i in range(len(catalogue))]
    layout = [(relative[i], catalogue.class_names[int(k)]) for i, k in enumerate(catalogue.labels) if k >= 0]
    from_csv = read_label_csv(labels_csv) if labels_csv else []
    test = read_label_csv(test_csv) if test_csv else []
    known = set(relative)
    for what, rows in (("the image layout", layout), ("--labels", from_csv), ("--test", test)):
        _check_label_rows(what, rows, known, classes, catalogue.root)
    states = file_states(catalogue.items, workers=workers)
    bad = sorted((relative[i], why) for i, why in enumerate(states) if isinstance(why, str))
    if bad:
        raise ProjectError(
            f"{len(bad)} image(s) under {catalogue.root} cannot be read, e.g. "
            + ", ".join(f"{p} ({why})" for p, why in bad[:SHOWN])
            + ": fix or remove them, then run `unisal project init` again"
        )
    files = [s for s in states if isinstance(s, FileState)]
    # A group is a connected component of "same groups-CSV group" and "same bytes".
    groups, _, _ = join_identical(catalogue.groups, [s.sha256 for s in files])
    test_paths = {p for p, _ in test}
    splits = held_out_splits(groups, np.asarray([p in test_paths for p in relative], bool))
    notes = list(catalogue.notes)
    moved = sorted(
        p for p, split in zip(relative, splits, strict=True) if split == "test" and p not in test_paths
    )
    if moved:
        notes.append(
            f"{len(moved)} image(s) share a group with a --test image and are held out too "
            f"(never queued nor trained on), e.g. {examples(moved)}"
        )
    final = dict(layout)  # a CSV's label overrides the layout's, the hold-out's overrides both
    final.update(dict(from_csv))
    final.update(dict(test))
    image_rows = [
        (path, s.sha256, s.size, f"g{int(g)}", str(split), s.stamp)
        for path, s, g, split in zip(relative, files, groups, splits, strict=True)
    ]
    return ProjectPlan(str(Path(catalogue.root).resolve()), classes, image_rows, list(final.items()), notes)


def _temporary_db(folder: Path) -> Path:
    return folder / f".{DB_NAME}.tmp-{os.getpid()}"


TILE_TABLE = "tiles.csv"  # a project on slides: its tiles (unisal.data.tiling's table)
TILING_DIR = ".init-tiles"  # where init tiles the slides (resumable), before the database exists


def _leftovers(folder: Path) -> set[Path]:
    """What an init that was killed leaves (temporary databases, the tiling under way, a tile
    table without its database): nothing of the user's."""
    out = set(folder.glob(f".{DB_NAME}.tmp-*")) | {folder / TILING_DIR}
    if not project_db(folder).exists():
        out.add(folder / TILE_TABLE)
    return out


def _remove_dead_leftovers(folder: Path) -> None:
    for leftover in _leftovers(folder):
        pid = leftover.name.rpartition("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            leftover.unlink(missing_ok=True)


def check_new_folder(folder: str | Path) -> None:
    """A project folder must be new or empty (an interrupted init's leftovers aside)."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or set(folder.iterdir()) - _leftovers(folder)):
        raise ProjectError(f"{folder} exists and is not an empty folder; choose a new project folder")


def _publish(tmp: Path, db: Path) -> None:
    """Give the finished database its name; never over a ``project.db`` that appeared meanwhile."""
    try:
        os.link(tmp, db)
    except FileExistsError:
        raise ProjectError(f"{db} appeared meanwhile (another init?); nothing was written") from None
    except OSError:  # a file system without hard links
        if db.exists():
            raise ProjectError(f"{db} appeared meanwhile (another init?); nothing was written") from None
        os.replace(tmp, db)


def create_project(
    folder: str | Path, plan: ProjectPlan, *, settings: dict[str, Any] | None = None
) -> ProjectStore:
    """Write the planned project: the database appears whole under its name, or not at all."""
    folder = Path(folder)
    check_new_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_dead_leftovers(folder)
    tmp = _temporary_db(folder)
    try:
        store = ProjectStore.create(
            tmp, classes=plan.classes, settings={"image_root": plan.root, **(settings or {})}
        )
        store.add_images(plan.images)
        if plan.labels:
            store.import_labels(plan.labels, IMPORTER)
        store.close()  # the last connection checkpoints the write-ahead log into the file
        if plan.tile_table is not None:
            shutil.copyfile(plan.tile_table, folder / TILE_TABLE)
        _publish(tmp, project_db(folder))
        if plan.tile_table is not None:
            shutil.rmtree(folder / TILING_DIR, ignore_errors=True)
    finally:
        for extra in ("", "-wal", "-shm"):
            Path(f"{tmp}{extra}").unlink(missing_ok=True)
    return ProjectStore.open(project_db(folder))


def init_project(
    folder: str | Path,
    *,
    images: str | Path,
    classes: list[str] | None,
    fmt: str = "unlabelled",
    labels_csv: str | Path | None = None,
    groups_csv: str | Path | None = None,
    test_csv: str | Path | None = None,
    settings: dict[str, Any] | None = None,
    workers: int = 4,
) -> ProjectStore:
    """Create a project; every check runs before the database is written.

    Args:
        folder: the project folder (new, or empty).
        images: the image folder (or CSV/npz for the other readers).
        classes: the class names, in the order of the keyboard shortcuts 1-9; None: the
            reader's (the class folders, sorted), which ``unlabelled`` has not.
        labels_csv: ``path,label`` labels to start from (paths relative to the image root).
        groups_csv: ``path,group``: images of a group stay in one split. Byte-identical images
            always share a group (and so do their groups).
        test_csv: ``path,label``: a labelled hold-out, never queried nor trained on; every
            image of a group that holds one is held out with it.
    """
    check_new_folder(folder)
    plan = plan_project(
        images=images, classes=classes, fmt=fmt, labels_csv=labels_csv, groups_csv=groups_csv,
        test_csv=test_csv, workers=workers,
    )  # fmt: skip
    return create_project(folder, plan, settings=settings)


# ---- export
def image_formats() -> tuple[str, ...]:
    """``project init --format`` choices: ``unlabelled`` and every registered data reader."""
    return ("unlabelled", *READERS.names())


__all__ = [
    "IMPORTER",
    "LABEL_EXPORTS",
    "NOT_REGULAR",
    "FileState",
    "ProjectPlan",
    "check_images",
    "check_new_folder",
    "create_project",
    "export_labels",
    "file_stamp",
    "file_state",
    "file_states",
    "image_formats",
    "import_labels",
    "init_project",
    "label_studio_config",
    "TILE_TABLE",
    "TILING_DIR",
    "open_project",
    "plan_catalogue",
    "plan_project",
    "project_db",
    "protected_outputs",
    "read_images",
    "read_label_csv",
    "read_label_studio",
    "sha256_of",
]
