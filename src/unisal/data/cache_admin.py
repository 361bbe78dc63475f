"""What the caches hold and how big they are (``unisal cache ls``), and removing them (``clear``).

The cache folder holds decoded-image caches (``<key>.npy`` with ``.bad.json`` and ``.complete.json``),
feature caches (``features/<key>/``) and the files' hashes that key them (``<key>.sha1.json``). Downloaded data sets (``datasets/``) are not caches
and are never listed or removed here.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CacheEntry:
    kind: str  # images | features
    key: str
    paths: tuple[Path, ...]
    bytes: int
    description: str
    complete: bool
    modified: float


def _size(path: Path) -> int:
    """Bytes that removing ``path`` frees: a symbolic link is its own few bytes, never its target."""
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size if path.is_symlink() or path.exists() else 0
    total = 0
    for root, _, files in os.walk(path):  # does not enter linked folders
        total += sum(os.lstat(os.path.join(root, name)).st_size for name in files)
    return total


def _link_note(path: Path) -> str:
    return f" (a link to {os.readlink(path)}: removing it leaves the target)" if path.is_symlink() else ""


KEY = re.compile(r"^[0-9a-f]{20}$")  # every cache is named by a 20-digit hex key: other names are not ours


def _present(path: Path) -> bool:
    return path.is_symlink() or path.exists()  # a dangling link is an entry too


def list_caches(folder: Path) -> list[CacheEntry]:
    """Every cache in ``folder``, newest first: only names that are cache keys (a file of the
    user's there is never listed, nor removed), and never through a linked ``features`` folder."""
    entries = []
    for npy in sorted(folder.glob("*.npy")):
        key = npy.stem
        if not KEY.match(key):
            continue
        paths = tuple(
            p
            for p in (
                npy,
                folder / f"{key}.bad.json",
                folder / f"{key}.complete.json",
                folder / f"{key}.done.json",
            )
            if _present(p)
        )
        try:
            import numpy as np

            shape = np.load(npy, mmap_mode="r").shape
            description = f"{shape[0]} images of {shape[1]} px"
        except (OSError, ValueError):
            description = "unreadable"
        complete = (folder / f"{key}.bad.json").is_file()
        entries.append(
            CacheEntry(
                "images",
                key,
                paths,
                sum(_size(p) for p in paths),
                description + _link_note(npy),
                complete,
                npy.lstat().st_mtime,
            )
        )
    features = folder / "features"
    for sub in sorted(features.iterdir()) if features.is_dir() and not features.is_symlink() else []:
        if not KEY.match(sub.name) or not (sub.is_dir() or sub.is_symlink()):
            continue
        if sub.is_symlink():
            entries.append(
                CacheEntry("features", sub.name, (sub,), _size(sub), _link_note(sub).strip(" ()"), True,
                           sub.lstat().st_mtime)
            )  # fmt: skip
            continue
        try:
            marker = json.loads((sub / "complete.json").read_text())  # unisal.io.folder_marker
            n, views, dim = marker.get("shape", ["?", "?", "?"])
            description = f"{marker.get('backbone', '?')}, {n} images x {views} views x {dim}"
            complete = True
        except (OSError, ValueError, TypeError):
            description, complete = "incomplete (a build that stopped or is running)", False
        entries.append(
            CacheEntry("features", sub.name, (sub,), _size(sub), description, complete, sub.stat().st_mtime)
        )
    for record in sorted(folder.glob("*.sha1.json")):
        if not KEY.match(record.name.removesuffix(".sha1.json")):
            continue
        try:
            description = f"SHA-1 of {len(json.loads(record.read_text()))} files (find caches by content)"
            complete = True
        except (OSError, ValueError, TypeError):
            description, complete = "unreadable", False
        entries.append(
            CacheEntry(
                "hashes",
                record.name.removesuffix(".sha1.json"),
                (record,),
                _size(record),
                description,
                complete,
                record.stat().st_mtime,
            )
        )
    return sorted(entries, key=lambda e: -e.modified)


def in_use(entry: CacheEntry) -> bool:
    """A feature cache whose build lock another process holds."""
    lock = entry.paths[0] / ".lock"
    if entry.kind != "features" or entry.paths[0].is_symlink() or not lock.is_file():
        return False
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def remove(entry: CacheEntry) -> int:
    """Delete the entry's files (a symbolic link itself, never what it points to); returns the
    bytes freed, measured: what could not be removed is not counted."""
    before = sum(_size(p) for p in entry.paths)
    for path in entry.paths:
        if path.is_symlink() or not path.is_dir():
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path, ignore_errors=True)
    return before - sum(_size(p) for p in entry.paths)


def describe(entry: CacheEntry) -> str:
    age = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.modified))
    state = "" if entry.complete else " [incomplete]"
    return f"{entry.kind:<8} {entry.key}  {entry.bytes / 1e6:9.1f} MB  {age}  {entry.description}{state}"
