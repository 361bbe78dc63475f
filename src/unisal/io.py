"""Atomic file writes: a file appears whole or not at all, even if the process is killed.

Every writer goes through :func:`atomic_path`: write a temporary file beside the target, then
rename it over the target (``os.replace`` is atomic on POSIX and Windows).

One convention marks an artefact built in several steps (a cache, a download) as whole: a JSON
record written last, atomically, by :func:`folder_marker` or :func:`file_marker`. Whatever is
there without its marker is an interrupted build, to redo.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

COMPLETE = "complete.json"


def folder_marker(folder: str | Path) -> Path:
    """The completion record of a folder-like artefact: ``FOLDER/complete.json``."""
    return Path(folder) / COMPLETE


def file_marker(path: str | Path) -> Path:
    """The completion record of a one-file artefact, beside it: ``<key>.npy`` -> ``<key>.complete.json``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.{COMPLETE}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed.

    The temporary name keeps the target's ending (``.model.pt2.tmp-<pid>.pt2``) because some
    writers pick the format by it (``torch.export.save`` warns without ``.pt2``).

    Raises:
        RunError: ``path`` exists and is not a regular file (a device, FIFO, socket, folder):
            replacing it would destroy something that is not ours to overwrite.
    """
    path = Path(path)
    _check_replaceable(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


_NOT_REGULAR = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind_of(mode: int) -> str | None:
    """What a non-regular file is (``a FIFO``), or None for a regular file or a link."""
    for test, kind in _NOT_REGULAR:
        if test(mode):
            return kind
    return None


def _check_replaceable(path: Path, *, what: str = "output") -> None:
    from unisal.errors import RunError

    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    except OSError:
        return  # the write itself reports what is wrong
    kind = _kind_of(mode)
    if kind is not None:
        raise RunError(f"{what} {path} is not a regular file ({kind}); name a new file or a regular file")


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, obj: Any, indent: int | None = None) -> None:
    write_text_atomic(path, json.dumps(obj, indent=indent))


def read_json_object(path: str | Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when the file is missing, unreadable or holds no object."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_csv_atomic(path: str | Path, header: list[str], rows: Iterable[Iterable[Any]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def make_folder(path: str | Path, *, what: str = "--out") -> Path:
    """Create ``path`` (and its parents) if needed and check that files can be written in it.

    Called before any work, so that an impossible output (``/dev/null/x``, a name too long, a
    read-only disk) stops the command at once, not after hours of training.

    Raises:
        RunError: the folder cannot be created or written; the message says why.
    """
    from unisal.errors import RunError

    path = check_creatable(path, what=what)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except FileExistsError:
        raise RunError(f"{what} {path} exists and is not a folder") from None
    except OSError as exc:
        raise RunError(f"cannot write {what} {path}: {exc.strerror or exc}") from None
    return path


def check_creatable(path: str | Path, *, what: str = "--out") -> Path:
    """Check, without creating anything, that folder ``path`` exists or can be created: every
    name fits the file system's limit and the nearest existing folder above it is writable.

    Raises:
        RunError: it cannot; the message says why.
    """
    from unisal.errors import RunError

    path = Path(path)
    long = [part for part in path.parts if len(part.encode()) > 255]
    if long:
        raise RunError(f"cannot create {what} {path}: the name {long[0][:40]}... is longer than 255 bytes")
    if path.is_dir():
        return path
    above = path
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise RunError(f"cannot create {what} {path}: {above} is a file, not a folder")
    if not os.access(above, os.W_OK | os.X_OK):
        raise RunError(f"cannot create {what} {path}: {above} is not writable")
    return path


def check_output_file(
    path: str | Path, *, what: str = "--out", protected: Mapping[Path, str] | None = None
) -> Path:
    """Check, before any work, that a file can be written at ``path``: its folder exists and is
    writable, and ``path`` is a new file or an existing regular file outside what it must not
    replace.

    A symbolic link is refused, even to a regular file: the atomic rename would replace the link,
    not write its target, and either reading surprises someone. Folder links above ``path`` are
    resolved, so a link cannot hide a protected folder.

    Args:
        path: the output file.
        what: how the message names it.
        protected: file or folder -> what it is (``the project's database``): ``path`` may be
            neither that file nor anything under that folder.

    Raises:
        RunError: it cannot; the message says why.
    """
    from unisal.errors import RunError

    path = Path(path)
    if path.is_dir():
        raise RunError(f"{what} {path} is a folder; name a file")
    if path.is_symlink():
        raise RunError(f"{what} {path} is a symbolic link; name the file itself or a new file")
    _check_replaceable(path, what=what)
    folder = path.parent
    if not folder.is_dir():
        raise RunError(f"{what} {path}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RunError(f"{what} {path}: the folder {folder} is not writable")
    if len(path.name.encode()) > 255:
        raise RunError(f"{what} {path}: the file name is longer than 255 bytes")
    real = Path(os.path.realpath(folder)) / path.name
    for place, name in (protected or {}).items():
        target = Path(os.path.realpath(place))
        if real == target and not target.is_dir():
            raise RunError(f"{what} {path} is {name} {place}; write it elsewhere")
        if target.is_dir() and real.is_relative_to(target):
            raise RunError(f"{what} {path} is inside {name} {place}; write it elsewhere")
    return path


def read_csv_rows(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a UTF-8 CSV file (a byte-order mark is allowed).

    Raises:
        InputFileError: the file is missing, not UTF-8 text, or not CSV; the message names the
            file, the byte and the encoding expected.
    """
    from unisal.errors import InputFileError

    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = list(reader.fieldnames or [])
    except FileNotFoundError:
        raise InputFileError(f"CSV file not found: {path}") from None
    except IsADirectoryError:
        raise InputFileError(f"{path} is a folder, not a CSV file") from None
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}): "
            "save it as UTF-8 CSV"
        ) from None
    except csv.Error as exc:
        raise InputFileError(f"{path} is not a readable CSV file: {exc}") from None
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    return header, rows


FLOAT16_MAX = 65504.0


def write_scores_atomic(path: str | Path, index: Any, scores: Any) -> None:
    """A round's per-item scores over its whole pool, compact (for maps of the pool): an ``.npz``
    with ``index`` (N,) int64 (catalogue indices in a simulation, image ids in a project) and
    ``score`` (N,) float16, clipped to float16's range (higher = more wanted)."""
    import numpy as np

    index = np.asarray(index, np.int64)
    score = np.clip(np.asarray(scores, np.float64), -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16)
    if index.shape != score.shape or index.ndim != 1:
        raise ValueError(f"scores {score.shape} do not match the items {index.shape}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # written member by member with a fixed time stamp: the same scores give the same bytes
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in (("index", index), ("score", score)):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            member.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(member, buffer.getvalue())


def read_scores(path: str | Path) -> tuple[Any, Any]:
    """``(index, score)`` as :func:`write_scores_atomic` wrote them."""
    import numpy as np

    with np.load(path) as data:
        return data["index"], data["score"]


def save_torch_atomic(obj: Any, path: str | Path) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# ``.<name>.tmp-<pid>``, then the name's ending if it has one (atomic_path keeps it)
_TEMPORARY_PID = re.compile(r"\.tmp-(\d+)(\.[^.]*)?$")


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files and folders (``.<name>.tmp-<pid>[.<ending>]``) that killed processes left
    in ``folder``; those of running processes stay. Returns what was removed."""
    import shutil

    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in folder.glob(".*.tmp-*"):
        found = _TEMPORARY_PID.search(path.name)
        if found is None or process_alive(int(found.group(1))):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
