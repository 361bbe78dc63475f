"""Labels in and out of a project: CSV (``path,label``) and Label Studio JSON, the labelling
config Label Studio needs, and the check that an import leaves the held-out labels alone."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from unisal.app.files import examples, protected_outputs
from unisal.app.store import ProjectError, ProjectStore
from unisal.errors import InputFileError
from unisal.io import check_output_file, read_csv_rows, write_text_atomic
from unisal.registry import unknown_name

IMPORTER = "import"  # the annotator name of labels that came from a file
LABEL_STUDIO_FROM = "label"  # the <Choices name=...> of the exported labelling config


def read_label_csv(path: str | Path) -> list[tuple[str, str]]:
    """``path,label`` rows (header required; UTF-8); rows with neither are skipped.

    Raises:
        ProjectError: no such header, a listed image without a label (for ``--test`` it would
            silently join the pool; for ``--labels`` and ``import`` it would be dropped
            unseen), a label without an image, or the file is a FIFO or device.
    """
    if os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path):
        raise ProjectError(f"{path} is not a regular file; name a CSV file")
    header, records = read_csv_rows(path)
    if not {"path", "label"} <= set(header):
        raise ProjectError(f"{path} must have a header with columns 'path' and 'label'")
    rows = [((r["path"] or "").strip(), (r["label"] or "").strip()) for r in records]
    rows = [(p, label) for p, label in rows if p or label]
    unlabelled = [p for p, label in rows if not label]
    if unlabelled:
        raise ProjectError(
            f"{path}: {len(unlabelled)} row(s) without a label, e.g. {examples(unlabelled)}: "
            "give every listed image a label, or leave it out"
        )
    if any(not p for p, _ in rows):
        raise ProjectError(f"{path}: {sum(not p for p, _ in rows)} row(s) with a label but no path")
    return rows


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


def export_labels(store: ProjectStore, out: str | Path, fmt: str) -> int:
    """Write the labels in an ``LABEL_EXPORTS`` format (atomically); returns how many. ``out``
    may not replace the project's own files nor lie in its image folder."""
    if fmt not in LABEL_EXPORTS:
        raise ProjectError(unknown_name("export format", fmt, list(LABEL_EXPORTS)))
    check_output_file(out, protected=protected_outputs(store.path.parent, store))
    text = LABEL_EXPORTS[fmt](store)
    write_text_atomic(out, text)
    return len(store.labels())


# ---- import
LOCAL_FILES = "/data/local-files/"  # Label Studio's local storage: ?d=<path under its root>
UPLOAD = "/data/upload/"  # Label Studio's uploads: /data/upload/<project>/<8 hex>-<file name>
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")


def _kind(value: object) -> str:
    """A JSON value's kind, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    kinds = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


_EXPECTED: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}


def _expect(value: object, kind: type, where: str) -> Any:
    """``value`` if it is a ``kind`` (dict, list, str), else a one-line error naming ``where``."""
    if not isinstance(value, kind):
        expected = _EXPECTED[kind]
        raise ProjectError(f"not a Label Studio JSON export: {where} is {_kind(value)}, expected {expected}")
    return value


def _under_root(candidate: str, known: set[str], root: str | None) -> str | None:
    """The project path of ``candidate``: a path relative to the image root, or an absolute
    path under it (as given, or with its links resolved); None if it is not a project image."""
    if candidate in known:
        return candidate
    if root is None or not candidate.startswith("/"):
        return None
    for form in (os.path.normpath(candidate), os.path.realpath(candidate)):
        try:
            relative = PurePosixPath(form).relative_to(root).as_posix()
        except ValueError:
            continue
        if relative in known:
            return relative
    return None


def _by_file_name(name: str, by_name: dict[str, list[str]]) -> str | None:
    """The one project image with this file name (or, for an upload, this name without Label
    Studio's hash prefix); None when there is none or more than one."""
    options = [name, _UPLOAD_PREFIX.sub("", name, count=1)]
    for option in dict.fromkeys(options):
        if len(by_name.get(option, [])) == 1:
            return by_name[option][0]
    return None


def _task_path(
    data: dict[str, Any], known: set[str], by_name: dict[str, list[str]], root: str | None, where: str
) -> str:
    """The project path of a Label Studio task, or the task's own reference when it names no
    project image (then it is an unknown image in the import's error).

    ``unisal_path`` (our own export) or a local-files URL / absolute path match only the
    project's own image (relative to the image root or absolute under it). Matching by file
    name is for what cannot say where it came from: an upload (``/data/upload/...``, whose file
    name Label Studio prefixes with a hash) and a bare file name.
    """
    own = data.get("unisal_path")
    if isinstance(own, str) and own in known:
        return own
    if "image" not in data:
        raise ProjectError(f"not a Label Studio JSON export: {where}: 'data.image' is missing")
    ref = _expect(data["image"], str, f"{where}: 'data.image'")
    url = urlparse(ref)
    query = parse_qs(url.query)
    if "d" in query:  # parse_qs has decoded the %-escapes already
        candidate = query["d"][0]
        return _under_root(candidate, known, root) or candidate
    if url.path.startswith(UPLOAD) and url.scheme in ("", "http", "https"):
        return _by_file_name(PurePosixPath(unquote(url.path)).name, by_name) or ref
    if url.scheme or url.netloc:  # a URL of somewhere else: no file of ours
        return ref
    if "/" not in ref:
        return _by_file_name(ref, by_name) or ref
    return _under_root(ref, known, root) or ref


def _choices(task: dict[str, Any], where: str) -> list[Any]:
    """The choices of the task's latest annotation that was not cancelled (empty: none)."""
    annotations = _expect(task.get("annotations") or [], list, f"{where}: 'annotations'")
    latest = None
    for j, annotation in enumerate(annotations):
        _expect(annotation, dict, f"{where}: 'annotations[{j}]'")
        if not annotation.get("was_cancelled"):
            latest = j
    if latest is None:
        return []
    at = f"{where}: 'annotations[{latest}].result"
    results = _expect(annotations[latest].get("result") or [], list, f"{at}'")
    for r, result in enumerate(results):
        _expect(result, dict, f"{at}[{r}]'")
        if result.get("type") != "choices":
            continue
        value = _expect(result.get("value") or {}, dict, f"{at}[{r}].value'")
        choices = _expect(value.get("choices") or [], list, f"{at}[{r}].value.choices'")
        if choices:
            return choices
    return []


def read_label_studio(text: str, known: set[str], *, root: str | None = None) -> list[tuple[str, str]]:
    """``(path, label)`` of every task with an annotation (the latest one counts).

    Args:
        text: a Label Studio JSON export (a list of tasks).
        known: the project's image paths (relative to ``root``).
        root: the project's image root: absolute paths under it are its images.

    Raises:
        ProjectError: the JSON is malformed (the message names the task index and what was
            expected there), or a choice is not a string.
    """
    try:
        tasks = json.loads(text)
    except RecursionError:
        raise ProjectError("not a Label Studio JSON export: nested too deeply to read") from None
    except ValueError as exc:
        raise ProjectError(f"not a Label Studio JSON export: {exc}") from exc
    if not isinstance(tasks, list):
        raise ProjectError(f"not a Label Studio JSON export: expected a list of tasks, got {_kind(tasks)}")
    by_name: dict[str, list[str]] = {}
    for path in sorted(known):
        by_name.setdefault(PurePosixPath(path).name, []).append(path)
    rows = []
    for k, task in enumerate(tasks):
        where = f"task at index {k}"
        if not isinstance(task, dict):
            raise ProjectError(
                f"not a Label Studio JSON export: {where} is {_kind(task)}, expected an object"
            )
        data = _expect(task.get("data") or {}, dict, f"{where}: 'data'")
        choices = _choices(task, where)
        if not choices:
            continue
        choice = choices[0]
        if not isinstance(choice, str):
            raise ProjectError(
                f"{where}: the choice {json.dumps(choice)} is not a class name (expected a string)"
            )
        rows.append((_task_path(data, known, by_name, root, where), choice))
    return rows


def _read_text(file: Path) -> str:
    try:
        return file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"{file} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}): "
            "save it as UTF-8"
        ) from None
    except OSError as exc:
        raise InputFileError(f"cannot read {file}: {exc.strerror or exc}") from None


def import_labels(store: ProjectStore, file: str | Path, *, annotator: str = IMPORTER) -> int:
    """Import a CSV (``path,label``) or a Label Studio JSON export, all or nothing."""
    file = Path(file)
    if not file.is_file():
        raise ProjectError(f"file not found: {file}")
    if file.suffix.lower() == ".json":
        known = {row["path"] for row in store.images()}
        rows = read_label_studio(_read_text(file), known, root=store.settings()["image_root"])
    else:
        rows = read_label_csv(file)
    if not rows:
        raise ProjectError(f"{file} holds no labels")
    check_held_out_unchanged(store, rows)
    return store.import_labels(rows, annotator)


def check_held_out_unchanged(store: ProjectStore, rows: list[tuple[str, str]]) -> None:
    """Refuse, before anything is written, rows that would change a held-out image's label:
    the hold-out is fixed at ``project init`` (a row repeating its label is fine).

    Raises:
        ProjectError: naming the held-out images the rows would change.
    """
    held = {r["path"] for r in store.images() if r["split"] == "test"}
    current = store.labels()
    changes = [
        f"{p} (held out as {current[p][0] if p in current else 'unlabelled'}, the file says {label})"
        for p, label in dict(rows).items()
        if p in held and (p not in current or current[p][0] != label)
    ]
    if changes:
        raise ProjectError(
            f"nothing imported: {len(changes)} held-out test image(s) would change label, e.g. "
            f"{examples(changes)}: the hold-out is fixed at `project init`"
        )
