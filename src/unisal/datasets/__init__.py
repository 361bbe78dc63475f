"""Public data sets: list, download (resumable, checksummed, extracted atomically) and verify.

Data live under ``--root``, else ``$UNISAL_DATA``, else the user cache (``~/.cache/unisal/datasets``);
each data set in ``<root>/<name>/``, which exists only once it is complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from unisal.data.images import is_image_file
from unisal.datasets.download import (
    DownloadError,
    completion_record,
    extract_zip,
    fetch,
    file_digest,
)
from unisal.datasets.specs import DatasetSpec, RemoteFile, dataset_names, get_dataset, register_dataset
from unisal.events import message
from unisal.io import folder_marker, make_folder, remove_stale_temporaries, write_json_atomic

__all__ = [
    "DatasetSpec",
    "DownloadError",
    "RemoteFile",
    "data_home",
    "dataset_names",
    "dataset_status",
    "download_dataset",
    "get_dataset",
    "register_dataset",
    "verify_dataset",
]


def data_home(root: str | Path | None = None) -> Path:
    """``root``, else ``$UNISAL_DATA``, else ``~/.cache/unisal/datasets`` (XDG_CACHE_HOME honoured)."""
    if root:
        return Path(root).expanduser().resolve()
    if os.environ.get("UNISAL_DATA"):
        return Path(os.environ["UNISAL_DATA"]).expanduser().resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return (cache / "unisal" / "datasets").resolve()


def dataset_dir(spec: DatasetSpec, root: str | Path | None = None) -> Path:
    return data_home(root) / spec.name


def data_path(spec: DatasetSpec, root: str | Path | None = None) -> Path:
    """What to pass to ``--data`` once the data set is in place."""
    return dataset_dir(spec, root) / spec.data


def dataset_status(spec: DatasetSpec, root: str | Path | None = None) -> str:
    """``ready``, ``not downloaded``, ``incomplete`` (a download to resume) or ``manual download``."""
    folder = dataset_dir(spec, root)
    if completion_record(folder).is_file():
        return "ready"
    if spec.manual:
        return "manual download"
    downloads = data_home(root) / ".downloads"
    if any((downloads / (f.filename + suffix)).exists() for f in spec.files for suffix in ("", ".part")):
        return "incomplete"
    return "not downloaded"


def download_dataset(
    spec: DatasetSpec,
    root: str | Path | None = None,
    *,
    keep_archive: bool = False,
) -> Path:
    """Fetch, check and extract ``spec``; returns the path for ``--data``. Idempotent and resumable."""
    if spec.manual:
        raise DownloadError(spec.manual)
    home = make_folder(data_home(root), what="the data folder")
    folder = dataset_dir(spec, root)
    remove_stale_temporaries(home)
    if completion_record(folder).is_file():
        message(f"{spec.name} is already in {folder}")
        return data_path(spec, root)
    downloads = home / ".downloads"
    records = []
    for remote in spec.files:
        archive = downloads / remote.filename
        if not archive.is_file():  # a file under its final name has passed its checksum
            fetch(remote.url, archive, md5=remote.md5, size=remote.size)
        records.append({"file": remote.filename, "md5": remote.md5, "url": remote.url})
    record = {"name": spec.name, "files": records, "n_images": spec.n_images}
    if all(r.extract for r in spec.files) and len(spec.files) == 1:
        extract_zip(downloads / spec.files[0].filename, folder, record=record)
    else:  # files used as they are (e.g. .npz): move them in, then mark the folder complete
        folder.mkdir(parents=True, exist_ok=True)
        for remote in spec.files:
            os.replace(downloads / remote.filename, folder / remote.filename)
        write_json_atomic(folder_marker(folder), record, indent=2)
    if not keep_archive:
        for remote in spec.files:
            (downloads / remote.filename).unlink(missing_ok=True)
    message(f"{spec.name}: ready in {folder}; use --data {data_path(spec, root)}")
    return data_path(spec, root)


def count_images(path: Path) -> int:
    """Images under a folder (recursively), or in the ``*_labels`` arrays of an .npz file."""
    if path.is_file() and path.suffix == ".npz":
        import numpy as np

        with np.load(path) as npz:
            return sum(len(npz[k]) for k in npz.files if k.endswith("_labels"))
    return sum(1 for p in path.rglob("*") if p.is_file() and is_image_file(p))


def verify_dataset(spec: DatasetSpec, root: str | Path | None = None) -> str:
    """Check a downloaded data set: completion record, image count, checksums of files kept.

    Returns:
        A one-line report. Raises DownloadError naming the problem.
    """
    folder = dataset_dir(spec, root)
    if not completion_record(folder).is_file():
        hint = spec.manual or f"run `unisal data download {spec.name}`"
        raise DownloadError(f"{spec.name} is not complete in {folder}: {hint}")
    try:
        json.loads(completion_record(folder).read_text())
    except ValueError as exc:
        raise DownloadError(
            f"{completion_record(folder)} is damaged ({exc}); download {spec.name} again"
        ) from exc
    for remote in spec.files:
        kept = folder / remote.filename if not remote.extract else None
        if kept is not None and kept.is_file():
            got = file_digest(kept, "md5")
            if got != remote.md5:
                raise DownloadError(
                    f"{kept} has MD5 {got}, not the published {remote.md5}; download it again"
                )
    target = data_path(spec, root)
    if not target.exists():
        raise DownloadError(f"{target} is missing; download {spec.name} again")
    n = count_images(target)
    if spec.n_images is not None and n != spec.n_images:
        raise DownloadError(
            f"{target} holds {n} images, not the {spec.n_images} published; download it again"
        )
    return f"{spec.name}: {n} images in {target}, checksums and count as published"
