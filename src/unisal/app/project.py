"""A labelling project on disk: ``DIR/project.db`` (the store) and ``DIR/rounds/`` (checkpoints).

``init_project`` reads the images (any reader layout, or every image file under a folder),
hashes them, seeds labels from the layout or a CSV, marks an optional labelled hold-out (with
every image of its groups), and creates the database; ``check_images`` finds the images changed
since; ``export_labels`` and ``import_labels`` speak CSV and Label Studio JSON.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np

from unisal.app.store import DB_NAME, ROUND_LOCK_NAME, ProjectError, ProjectStore, check_class_names, damaged
from unisal.data.cache import join_identical
from unisal.data.catalogue import READERS, Catalogue, DataError, attach_groups, load_catalogue
from unisal.data.images import NPZ_SEPARATOR, is_image_file, npz_member
from unisal.errors import InputFileError
from unisal.io import check_output_file, read_csv_rows, write_text_atomic
from unisal.registry import unknown_name

IMPORTER = "import"  # the annotator name of labels that came from a file
LABEL_STUDIO_FROM = "label"  # the <Choices name=...> of the exported labelling config
SHOWN = 5  # offenders named in an error message


def project_db(folder: str | Path) -> Path:
    return Path(folder) / DB_NAME


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


def protected_outputs(folder: str | Path, store: ProjectStore) -> dict[Path, str]:
    """What an output file of a project command must never replace (file or folder -> what it
    is): the project's database with its journal files, its round lock and checkpoints, and its
    image folder (which holds every image)."""
    folder = Path(folder)
    db = project_db(folder)
    out: dict[Path, str] = {
        Path(f"{db}{extra}"): "the project's database" for extra in ("", "-wal", "-shm", "-journal")
    }
    out[folder / ROUND_LOCK_NAME] = "the project's round lock"
    out[folder / "rounds"] = "the project's rounds folder"
    out[Path(store.settings()["image_root"])] = "the project's image folder"
    return out


# ---- reading and hashing the images
def sha256_of(path: str | Path) -> tuple[str, int]:
    """Content hash and size of a file."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def file_on_disk(path: str) -> str:
    """The file that holds an image: itself, or the .npz file of an image inside one."""
    return path.partition(NPZ_SEPARATOR)[0]


@dataclass(frozen=True)
class FileState:
    """What a project knows of an image's bytes: hash, size (of the array for an image inside
    an .npz) and the :func:`file_stamp` of the file that holds it."""

    sha256: str
    size: int
    stamp: int


def file_stamp(st: os.stat_result) -> int:
    """One signed 64-bit number that changes whenever the file may have changed: modification
    time, status-change time and inode (kept in the images table's ``mtime_ns`` column).

    The modification time alone is not enough: ``cp other.png a.png; touch -r orig a.png``
    puts it back. The status-change time cannot be set back by a user, and a file replaced by a
    rename has another inode; either makes the check hash the file again.
    """
    digest = hashlib.blake2b(f"{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


NOT_REGULAR = "not a regular file"  # a FIFO, device or socket: reading one may wait for ever


def _why_unreadable(error: OSError) -> str:
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, FileNotFoundError):
        return "file not found"
    if isinstance(error, IsADirectoryError):
        return "a folder, not a file"
    return error.strerror or str(error) or type(error).__name__


def file_state(path: str) -> FileState | str:
    """The state of an image file, or why it cannot be read (permission, I/O error, empty file)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            return "a folder, not a file" if stat.S_ISDIR(st.st_mode) else NOT_REGULAR
        sha256, size = sha256_of(path)
    except OSError as error:
        return _why_unreadable(error)
    if size == 0:
        return "empty file"
    return FileState(sha256, size, file_stamp(st))


def _npz_states(file: str, members: list[str]) -> list[FileState | str]:
    """The states of images inside one .npz file, each ``<split>_images`` array read once, from
    the file as it is now (not a cached copy: the check is for changes)."""
    try:
        st = os.stat(file)
        if not stat.S_ISREG(st.st_mode):
            return [NOT_REGULAR] * len(members)
        stamp = file_stamp(st)
        with np.load(file) as npz:
            arrays: dict[str, np.ndarray] = {}
            out: list[FileState | str] = []
            for path in members:
                _, key, index = npz_member(path)
                if key not in arrays:
                    arrays[key] = np.asarray(npz[key]) if key in npz.files else np.empty((0,))
                if not 0 <= index < len(arrays[key]):
                    out.append(f"no image {index} in {key}")
                    continue
                array = np.ascontiguousarray(arrays[key][index])
                digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
                digest.update(array.tobytes())
                out.append(FileState(digest.hexdigest(), int(array.nbytes), stamp))
            return out
    except OSError as error:
        return [_why_unreadable(error)] * len(members)
    except ValueError as error:  # not an .npz file (any more)
        return [f"not a readable .npz file: {error}"] * len(members)


def file_states(paths: list[str], *, workers: int = 4) -> list[FileState | str]:
    """:func:`file_state` of every image (N,), images inside an .npz file included."""
    out: list[FileState | str] = ["" for _ in paths]
    plain = [i for i, p in enumerate(paths) if NPZ_SEPARATOR not in p]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, state in zip(plain, pool.map(file_state, [paths[i] for i in plain]), strict=True):
            out[i] = state
    by_file: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        if NPZ_SEPARATOR in p:
            by_file.setdefault(file_on_disk(p), []).append(i)
    for file, members in by_file.items():
        for i, state in zip(members, _npz_states(file, [paths[i] for i in members]), strict=True):
            out[i] = state
    return out


def _examples(items: list[str]) -> str:
    return ", ".join(items[:SHOWN])


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
            f"{path}: {len(unlabelled)} row(s) without a label, e.g. {_examples(unlabelled)}: "
            "give every listed image a label, or leave it out"
        )
    if any(not p for p, _ in rows):
        raise ProjectError(f"{path}: {sum(not p for p, _ in rows)} row(s) with a label but no path")
    return rows


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
    """``test`` for every image of a group that holds a --test image, else ``pool`` (N,): a
    group is held out whole or not at all, so no copy or group-mate of a test image is queried
    or trained on."""
    held = np.isin(groups, np.unique(groups[is_test]))
    return np.where(held, "test", "pool")


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
    catalogue = read_images(images, fmt)
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
    states = file_states(catalogue.paths, workers=workers)
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
            f"(never queued nor trained on), e.g. {_examples(moved)}"
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


def _leftovers(folder: Path) -> set[Path]:
    """Temporary databases of an init that was killed: nothing of the user's."""
    return set(folder.glob(f".{DB_NAME}.tmp-*"))


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
        _publish(tmp, project_db(folder))
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


# ---- images changed since init
def check_images(store: ProjectStore, *, workers: int = 4) -> None:
    """Stop unless every image still has the bytes it had at ``project init``.

    Cheap: a file is hashed again only when its size or :func:`file_stamp` (modification and
    status-change times, inode) differs from the recorded ones (or none is recorded, as in a
    version 1 database); when its hash still matches, the new stamp is recorded. Only regular
    files are read: a FIFO or device in place of an image is "not a regular file".

    Raises:
        ProjectError: images changed (same path, other bytes), missing or unreadable.
    """
    root = Path(store.settings()["image_root"])
    rows = store.images()
    suspects = []
    missing = []
    for row in rows:
        path = str(root / row["path"])
        try:
            st = os.stat(file_on_disk(path))
        except FileNotFoundError:
            missing.append(row["path"])
            continue
        except OSError:
            suspects.append(row)
            continue
        same_size = NPZ_SEPARATOR in path or st.st_size == row["bytes"]
        if row["mtime_ns"] is None or file_stamp(st) != row["mtime_ns"] or not same_size:
            suspects.append(row)
    states = file_states([str(root / r["path"]) for r in suspects], workers=workers)
    changed: list[str] = []
    unreadable: list[str] = []
    touched: list[tuple[int, int]] = []
    for row, state in zip(suspects, states, strict=True):
        if state == "file not found":  # removed between the stat and the hash
            missing.append(row["path"])
        elif isinstance(state, str):
            unreadable.append(f"{row['path']} ({state})")
        elif state.sha256 != row["sha256"]:
            changed.append(row["path"])
        else:
            touched.append((int(row["id"]), state.stamp))
    if touched:
        store.set_mtimes(touched)
    problems = []
    if changed:
        problems.append(
            f"{len(changed)} image(s) changed since `project init` (same path, other bytes), "
            f"e.g. {_examples(changed)}"
        )
    if missing:
        problems.append(f"{len(missing)} image(s) missing, e.g. {_examples(missing)}")
    if unreadable:
        problems.append(f"{len(unreadable)} image(s) cannot be read, e.g. {_examples(unreadable)}")
    if problems:
        raise ProjectError("; ".join(problems) + ": put the original back or start a new project")


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
            f"{_examples(changes)}: the hold-out is fixed at `project init`"
        )
