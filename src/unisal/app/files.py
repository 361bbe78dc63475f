"""The files of a project: where its own files are (never to be overwritten), and the state of
each image on disk (content hash, size, modification time) that ``check_images`` compares."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unisal.app.store import DB_NAME, ROUND_LOCK_NAME, ProjectError, ProjectStore
from unisal.data.items import ItemSource, MixedItems, as_items, npz_member, open_items

SHOWN = 5  # offenders named in an error message


def project_db(folder: str | Path) -> Path:
    return Path(folder) / DB_NAME


def protected_outputs(folder: str | Path, store: ProjectStore) -> dict[Path, str]:
    """What an output file of a project command must never replace (file or folder -> what it
    is): the project's database with its journal files, its round lock and checkpoints, its tile
    table (a project on slides), and its image folder (which holds every image or slide)."""
    folder = Path(folder)
    db = project_db(folder)
    out: dict[Path, str] = {
        Path(f"{db}{extra}"): "the project's database" for extra in ("", "-wal", "-shm", "-journal")
    }
    out[folder / ROUND_LOCK_NAME] = "the project's round lock"
    out[folder / "rounds"] = "the project's rounds folder"
    out[folder / "tiles.csv"] = "the project's tile table"
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


def _member_states(holder: FileState | str, members: list[str]) -> list[FileState | str]:
    """Items that are places in one file (tiles of a slide): each one's hash is of the file's
    hash and its own id (the file's bytes are hashed once for all its members), its size the
    file's."""
    if isinstance(holder, str):
        return [holder] * len(members)
    return [
        FileState(hashlib.sha256(f"{holder.sha256}{member}".encode()).hexdigest(), holder.size, holder.stamp)
        for member in members
    ]


def file_states(items: ItemSource | Sequence[str], *, workers: int = 4) -> list[FileState | str]:
    """:func:`file_state` of every item (N,): of its file, of its row of an .npz file, or of its
    place in a slide (:func:`_member_states`: every slide hashed once)."""
    items = as_items(items)
    if isinstance(items, MixedItems):
        parts = [file_states(part, workers=workers) for part in items.parts]
        return [parts[p][j] for p, j in items.where]
    if items.kind == "tile":
        ids = items.ids
        by_slide: dict[str, list[int]] = {}
        for i in range(len(items)):
            by_slide.setdefault(items.holder(i), []).append(i)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            slides = dict(zip(by_slide, pool.map(file_state, list(by_slide)), strict=True))
        tiles: list[FileState | str] = ["" for _ in range(len(items))]
        for slide, members in by_slide.items():
            states = _member_states(slides[slide], [ids[i].rpartition("::")[2] for i in members])
            for i, state in zip(members, states, strict=True):
                tiles[i] = state
        return tiles
    if items.kind == "npz":
        out: list[FileState | str] = ["" for _ in range(len(items))]
        by_file: dict[str, list[int]] = {}
        for i in range(len(items)):
            by_file.setdefault(items.holder(i), []).append(i)
        ids = items.ids
        for file, members in by_file.items():
            for i, state in zip(members, _npz_states(file, [ids[i] for i in members]), strict=True):
                out[i] = state
        return out
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(file_state, [items.holder(i) for i in range(len(items))]))


def examples(items: list[str]) -> str:
    return ", ".join(items[:SHOWN])


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
    items = open_items([str(root / row["path"]) for row in rows])
    ids = items.ids
    stats: dict[str, os.stat_result | OSError] = {}  # one stat per file: a slide holds many tiles
    for i, row in enumerate(rows):
        holder = items.holder(i)
        if holder not in stats:
            try:
                stats[holder] = os.stat(holder)
            except OSError as error:
                stats[holder] = error
        st = stats[holder]
        if isinstance(st, FileNotFoundError):
            missing.append(row["path"])
            continue
        if isinstance(st, OSError):
            suspects.append(row)
            continue
        same_size = holder != ids[i] or st.st_size == row["bytes"]  # a row's size is not its file's
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
            f"e.g. {examples(changed)}"
        )
    if missing:
        problems.append(f"{len(missing)} image(s) missing, e.g. {examples(missing)}")
    if unreadable:
        problems.append(f"{len(unreadable)} image(s) cannot be read, e.g. {examples(unreadable)}")
    if problems:
        raise ProjectError("; ".join(problems) + ": put the original back or start a new project")
