"""A labelling project on disk: ``DIR/project.db`` (the store) and ``DIR/rounds/`` (checkpoints).

``init_project`` reads the images (any reader layout, or every image file under a folder),
hashes them, seeds labels from the layout or a CSV, marks an optional labelled hold-out, and
creates the database; ``export_labels`` and ``import_labels`` speak CSV and Label Studio JSON.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np

from unisal.app.store import DB_NAME, ProjectError, ProjectStore
from unisal.data.catalogue import READERS, Catalogue, DataError, attach_groups, load_catalogue
from unisal.data.images import is_image_file
from unisal.io import write_text_atomic
from unisal.registry import unknown_name

IMPORTER = "import"  # the annotator name of labels that came from a file
LABEL_STUDIO_FROM = "label"  # the <Choices name=...> of the exported labelling config


def project_db(folder: str | Path) -> Path:
    return Path(folder) / DB_NAME


def open_project(folder: str | Path) -> ProjectStore:
    db = project_db(folder)
    if not db.is_file():
        raise ProjectError(
            f"{folder} holds no unisal project (no {DB_NAME}); create one with `unisal project init`"
        )
    return ProjectStore.open(db)


def sha256_of(path: str | Path) -> tuple[str, int]:
    """Content hash and size of a file."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


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
    return Catalogue(paths, np.full(len(paths), -1, np.int64), np.arange(len(paths)), [], str(root))


def read_label_csv(path: str | Path) -> list[tuple[str, str]]:
    """``path,label`` rows (header required)."""
    path = Path(path)
    if not path.is_file():
        raise ProjectError(f"CSV file not found: {path}")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"path", "label"} <= set(reader.fieldnames or []):
            raise ProjectError(f"{path} must have a header with columns 'path' and 'label'")
        return [
            (r["path"].strip(), (r["label"] or "").strip())
            for r in reader
            if r["path"] and (r["label"] or "").strip()
        ]


def init_project(
    folder: str | Path,
    *,
    images: str | Path,
    classes: list[str],
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
        classes: the class names, in the order of the keyboard shortcuts 1-9.
        labels_csv: ``path,label`` labels to start from (paths relative to the image root).
        groups_csv: ``path,group``: images of a group stay in one split. Byte-identical images
            always share a group.
        test_csv: ``path,label``: a labelled hold-out, never queried nor trained on.
    """
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ProjectError(f"{folder} exists and is not an empty folder; choose a new project folder")
    catalogue = read_images(images, fmt)
    if groups_csv:
        catalogue = attach_groups(catalogue, groups_csv)
    relative = [catalogue.relative(i) for i in range(len(catalogue))]
    layout = [(relative[i], catalogue.class_names[int(k)]) for i, k in enumerate(catalogue.labels) if k >= 0]
    from_csv = read_label_csv(labels_csv) if labels_csv else []
    test = read_label_csv(test_csv) if test_csv else []
    known = set(relative)
    for what, rows in (("the image layout", layout), ("--labels", from_csv), ("--test", test)):
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
                parts.append(
                    f"{len(unknown_paths)} image(s) not under {catalogue.root}, e.g. {unknown_paths[0]}"
                )
            if unknown_classes:
                parts.append(f"class(es) {unknown_classes[:5]} not among --classes {classes}")
            raise ProjectError(f"{what}: " + "; ".join(parts))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        hashes = list(pool.map(sha256_of, catalogue.paths))
    # Byte-identical images share a group whatever the groups CSV says; else the CSV's group.
    by_hash: dict[str, str] = {}
    groups = []
    for (digest, _), group in zip(hashes, catalogue.groups, strict=True):
        groups.append(by_hash.setdefault(digest, f"g{int(group)}"))
    test_paths = {p for p, _ in test}
    folder.mkdir(parents=True, exist_ok=True)
    store = ProjectStore.create(
        project_db(folder),
        classes=classes,
        settings={"image_root": str(Path(catalogue.root).resolve()), **(settings or {})},
    )
    store.add_images(
        (path, digest, size, group, "test" if path in test_paths else "pool")
        for path, (digest, size), group in zip(relative, hashes, groups, strict=True)
    )
    final = dict(layout)  # a CSV's label overrides the layout's, the hold-out's overrides both
    final.update(dict(from_csv))
    final.update(dict(test))
    if final:
        store.import_labels(list(final.items()), IMPORTER)
    return store


# ---- export
def export_csv(store: ProjectStore) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["path", "label", "annotator", "labelled_at"])
    for path, (label, annotator, at) in store.labels().items():
        writer.writerow([path, label, annotator, at])
    return out.getvalue()


def export_label_studio(store: ProjectStore) -> str:
    """Label Studio's JSON export: a list of tasks, one per labelled image, with its choice.

    ``data.image`` is a local-files URL (``/data/local-files/?d=<path>``) relative to the
    project's image root, so Label Studio's local storage can serve the images; the same path is
    kept in ``data.unisal_path`` for an exact round trip.
    """
    tasks = []
    for k, (path, (label, annotator, at)) in enumerate(store.labels().items(), start=1):
        tasks.append(
            {
                "id": k,
                "data": {"image": f"/data/local-files/?d={path}", "unisal_path": path},
                "annotations": [
                    {
                        "id": k,
                        "completed_by": annotator,
                        "created_at": at,
                        "result": [
                            {
                                "from_name": LABEL_STUDIO_FROM,
                                "to_name": "image",
                                "type": "choices",
                                "value": {"choices": [label]},
                            }
                        ],
                    }
                ],
            }
        )
    return json.dumps(tasks, indent=2)


def label_studio_config(class_names: list[str]) -> str:
    """The labelling interface that matches ``export_label_studio`` (paste it into Label Studio)."""
    choices = "\n".join(f'    <Choice value="{name}"/>' for name in class_names)
    return (
        '<View>\n  <Image name="image" value="$image" zoom="true"/>\n'
        f'  <Choices name="{LABEL_STUDIO_FROM}" toName="image" choice="single" showInLine="true">\n'
        f"{choices}\n  </Choices>\n</View>\n"
    )


# export format -> writer (the ``project export --format`` choices)
LABEL_EXPORTS: dict[str, Callable[[ProjectStore], str]] = {
    "csv": export_csv,
    "labelstudio": export_label_studio,
}


def image_formats() -> tuple[str, ...]:
    """``project init --format`` choices: ``unlabelled`` and every registered data reader."""
    return ("unlabelled", *READERS.names())


def export_labels(store: ProjectStore, out: str | Path, fmt: str) -> int:
    """Write the labels in an ``LABEL_EXPORTS`` format (atomically); returns how many."""
    if fmt not in LABEL_EXPORTS:
        raise ProjectError(unknown_name("export format", fmt, list(LABEL_EXPORTS)))
    text = LABEL_EXPORTS[fmt](store)
    write_text_atomic(out, text)
    return len(store.labels())


# ---- import
def _task_path(task: dict[str, Any], known: set[str], by_name: dict[str, list[str]]) -> str:
    """The project path of a Label Studio task: ``unisal_path``, a local-files URL, or a unique
    file name (Label Studio's uploads prefix names with a hash: ``1a2b3c4d-name.png``)."""
    data = task.get("data") or {}
    if data.get("unisal_path") in known:
        return str(data["unisal_path"])
    ref = str(data.get("image", ""))
    query = parse_qs(urlparse(ref).query)
    if "d" in query:
        candidate = unquote(query["d"][0])
        if candidate in known:
            return candidate
        ref = candidate
    name = PurePosixPath(unquote(urlparse(ref).path)).name
    for option in (name, name.split("-", 1)[-1]):
        if len(by_name.get(option, [])) == 1:
            return by_name[option][0]
    return ref or "<task without an image>"


def read_label_studio(text: str, known: set[str]) -> list[tuple[str, str]]:
    """``(path, label)`` of every task with an annotation (the latest one counts)."""
    try:
        tasks = json.loads(text)
    except ValueError as exc:
        raise ProjectError(f"not a Label Studio JSON export: {exc}") from exc
    if not isinstance(tasks, list):
        raise ProjectError("not a Label Studio JSON export: expected a list of tasks")
    by_name: dict[str, list[str]] = {}
    for path in known:
        by_name.setdefault(PurePosixPath(path).name, []).append(path)
    rows = []
    for task in tasks:
        annotations = [a for a in (task.get("annotations") or []) if not a.get("was_cancelled")]
        choices = [
            r["value"]["choices"][0]
            for a in annotations[-1:]
            for r in a.get("result", [])
            if r.get("type") == "choices" and r.get("value", {}).get("choices")
        ]
        if choices:
            rows.append((_task_path(task, known, by_name), str(choices[0])))
    return rows


def import_labels(store: ProjectStore, file: str | Path, *, annotator: str = IMPORTER) -> int:
    """Import a CSV (``path,label``) or a Label Studio JSON export, all or nothing."""
    file = Path(file)
    if not file.is_file():
        raise ProjectError(f"file not found: {file}")
    if file.suffix.lower() == ".json":
        known = {row["path"] for row in store.images()}
        rows = read_label_studio(file.read_text(), known)
    else:
        rows = read_label_csv(file)
    if not rows:
        raise ProjectError(f"{file} holds no labels")
    return store.import_labels(rows, annotator)
