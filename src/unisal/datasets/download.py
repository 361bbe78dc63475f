"""Fetch a file over HTTP(S) with resume and a checksum, and extract archives atomically.

A download streams into ``<name>.part`` beside the target; an interrupted transfer continues
from the bytes already there (an HTTP range request), a dropped connection is retried, and the
file gets its final name only after its checksum matched. An archive is extracted into a
temporary folder that is renamed into place only when every member is out and a completion
record is written, so a folder that exists is a whole data set.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from unisal.errors import DownloadError
from unisal.events import Task, message, track
from unisal.io import folder_marker

LEGACY_COMPLETE = ".unisal-complete.json"  # the record's name before issue 16: still read


def completion_record(folder: str | Path) -> Path:
    """Where a data set folder's completion record is (:func:`unisal.io.folder_marker`), or the
    one an earlier version wrote, so that a data set downloaded then stays ready."""
    legacy = Path(folder) / LEGACY_COMPLETE
    return legacy if legacy.is_file() and not folder_marker(folder).is_file() else folder_marker(folder)


CHUNK = 1 << 20


def file_digest(path: str | Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    path = Path(path)
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle, byte_task(path.stat().st_size, f"checking {path.name}") as task:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
            task.advance(len(block))
    return digest.hexdigest()


def byte_task(total: int | None, name: str, done: int = 0) -> Task:
    """A long task counting bytes."""
    return Task(name, total, unit="B", done=done, long=True)


def _open(url: str, start: int, timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"User-Agent": "unisal"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) URLs from the catalogue


def fetch(
    url: str,
    target: str | Path,
    *,
    md5: str | None,
    size: int | None = None,
    retries: int = 5,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``target`` (resuming ``target.part``), then check its MD5.

    Raises:
        DownloadError: the server is unreachable after ``retries`` tries, or the checksum
            differs (the partial file is then removed, so a new call starts afresh).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    tries = 0
    while True:
        start = part.stat().st_size if part.is_file() else 0
        if size is not None and start >= size:
            break
        try:
            with _open(url, start, timeout) as response:
                status = getattr(response, "status", 200)
                if start and status != 206:  # the server ignored the range: start again
                    start = 0
                total = size
                length = response.headers.get("Content-Length")
                if total is None and length is not None:
                    total = start + int(length)
                with (
                    part.open("ab" if start else "wb") as handle,
                    byte_task(total, f"downloading {target.name}", start) as task,
                ):
                    for block in iter(lambda: response.read(CHUNK), b""):
                        handle.write(block)
                        task.advance(len(block))
                received = part.stat().st_size
                if total is not None and received < total:
                    raise ConnectionError(f"connection closed after {received} of {total} bytes")
            break
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and part.is_file():  # range past the end: the file is whole
                break
            raise DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
        except (
            urllib.error.URLError,
            http.client.HTTPException,
            ConnectionError,
            TimeoutError,
            OSError,
        ) as exc:
            tries += 1
            if tries > retries:
                raise DownloadError(
                    f"cannot download {url} ({exc}); run the command again to resume from "
                    f"{part.stat().st_size if part.is_file() else 0} bytes"
                ) from exc
            message(f"download interrupted ({exc}); resuming (try {tries} of {retries})")
            time.sleep(min(2.0**tries, 30.0) * 0.1)
    if md5 is not None:
        got = file_digest(part, "md5")
        if got != md5:
            part.unlink()
            raise DownloadError(
                f"checksum mismatch for {target.name}: expected MD5 {md5}, got {got}; the partial file was "
                "removed, run the command again"
            )
    os.replace(part, target)
    return target


def _safe_members(archive: zipfile.ZipFile, dest: Path) -> list[zipfile.ZipInfo]:
    members = []
    root = dest.resolve()
    for info in archive.infolist():
        where = (dest / info.filename).resolve()
        if where != root and root not in where.parents:
            raise DownloadError(f"refusing archive member outside the target folder: {info.filename}")
        members.append(info)
    return members


def extract_zip(archive: str | Path, dest: str | Path, *, record: dict[str, Any]) -> Path:
    """Extract ``archive`` into ``dest`` atomically; ``dest/complete.json`` holds ``record``.

    Raises:
        DownloadError: the archive is corrupt (nothing is left at ``dest``).
    """
    archive, dest = Path(archive), Path(dest)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = _safe_members(zf, tmp)
            for info in track(members, f"extracting {archive.name}", unit="file", long=True):
                zf.extract(info, tmp)
        folder_marker(tmp).write_text(json.dumps(record, indent=2))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise DownloadError(
            f"{archive.name} is not a valid zip archive ({exc}); delete it and download again"
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
