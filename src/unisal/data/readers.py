"""Readers that turn a user's data into one catalogue of (item, label-or-unknown, group).

These layouts (``READERS``, the ``--format`` choices) are understood:

* ``folder``: one sub-folder per class (Kather 2016, NCT-CRC-HE-100K, LC25000);
* ``prefix``: a flat folder whose file names start with the class (``ADI-TCGA-AAA.png``);
* ``csv``: a CSV with columns ``path,label`` (label may be empty for unlabelled rows);
* ``npz``: a MedMNIST-style ``.npz`` file (``train_images``, ``train_labels``, ``val_…``, ``test_…``);
* ``json``: JSON label files (Chaoyang): a list of ``{"name": path, "label": class}``, or a folder
  holding such files;

and an optional groups CSV (``path,group``, ``unisal.data.catalogue.attach_groups``) ties images
that must stay in one split. A reader's keyword-only string arguments are its options
(``data.reader_options``, ``--reader-option KEY=VALUE``).
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from unisal.data.catalogue import UNLABELLED, Catalogue, attach_groups
from unisal.data.images import is_image_file
from unisal.data.items import FileItems, NpzItems, npz_id
from unisal.data.tile_table import read_tile_table
from unisal.errors import DataError, UnknownClassError
from unisal.io import read_csv_rows
from unisal.registry import Registry, unknown_name


def _sorted_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if is_image_file(p))


def _own_groups(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64)


def read_image_folder(root: str | Path) -> Catalogue:
    """One sub-folder per class; class names are the sub-folder names in sorted order."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    paths: list[str] = []
    labels: list[int] = []
    class_names: list[str] = []
    for class_dir in class_dirs:
        images = _sorted_images(class_dir)
        if not images:
            continue
        class_names.append(class_dir.name)
        paths += [str(p) for p in images]
        labels += [len(class_names) - 1] * len(images)
    if not paths:
        raise DataError(f"no images found in class sub-folders of {root}")
    if len(class_names) < 2:
        raise DataError(f"{root} has images of only one class ({class_names[0]}); need two or more")
    return Catalogue(
        FileItems(tuple(paths)), np.asarray(labels, np.int64), _own_groups(len(paths)), class_names, str(root)
    )


def read_prefix_folder(root: str | Path, *, separator: str = "-") -> Catalogue:
    """Flat folder; the class is the file name up to the first ``separator``."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    images = _sorted_images(root)
    if not images:
        raise DataError(f"no images found in {root}")
    prefixes = []
    for p in images:
        if separator not in p.stem:
            raise DataError(f"file name {p.name} has no class prefix ending in '{separator}'")
        prefixes.append(p.stem.split(separator, 1)[0])
    class_names = sorted(set(prefixes))
    if len(class_names) < 2:
        raise DataError(f"{root} has images of only one class prefix ({class_names[0]})")
    labels = np.asarray([class_names.index(c) for c in prefixes], np.int64)
    items = FileItems(tuple(str(p) for p in images))
    return Catalogue(items, labels, _own_groups(len(images)), class_names, str(root))


def read_csv_list(
    csv_path: str | Path,
    *,
    classes: str = "",
    path_column: str = "path",
    label_column: str = "label",
    class_names: list[str] | None = None,
) -> Catalogue:
    """CSV with a header naming a path and a label column; relative paths are relative to the CSV.

    Rows with an empty label are unlabelled. ``classes`` (comma-separated) or ``class_names``
    fixes the class order; otherwise it is the sorted set of labels present. Reader options
    (``--reader-option``): ``classes``, ``path_column``, ``label_column``.
    """
    csv_path = Path(csv_path).resolve()
    if not csv_path.is_file():
        raise DataError(f"CSV file not found: {csv_path}")
    fields, records = read_csv_rows(csv_path)
    if path_column not in fields or label_column not in fields:
        raise DataError(
            f"{csv_path} must have a header with columns '{path_column}' and '{label_column}'; got {fields}"
            + (" (set others with --reader-option path_column=... label_column=...)" if fields else "")
        )
    if classes and not class_names:
        class_names = [c.strip() for c in classes.split(",") if c.strip()]
    rows = [
        ((r[path_column] or "").strip(), (r[label_column] or "").strip()) for r in records if r[path_column]
    ]
    if not rows:
        raise DataError(f"{csv_path} lists no images")
    root = csv_path.parent
    # Joined, not resolved: a path through a linked folder stays the path given, relative or absolute.
    rows, notes = _merge_duplicate_rows([(os.path.normpath(root / p), lab) for p, lab in rows], csv_path)
    paths = [p for p, _ in rows]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise DataError(f"{len(missing)} image(s) listed in {csv_path} do not exist, e.g. {missing[0]}")
    present = sorted({lab for _, lab in rows if lab})
    names = list(class_names) if class_names else present
    unknown = [lab for lab in present if lab not in names]
    if unknown:
        raise UnknownClassError(f"'{unknown[0]}' in {csv_path} is not one of the classes {names}")
    labels = np.asarray([names.index(lab) if lab else UNLABELLED for _, lab in rows], np.int64)
    return Catalogue(FileItems(tuple(paths)), labels, _own_groups(len(paths)), names, str(root), notes)


def _merge_duplicate_rows(
    rows: list[tuple[str, str]], csv_path: Path
) -> tuple[list[tuple[str, str]], list[str]]:
    """One row per file: copies with the same label (or none) merge into one item; a file listed
    with two different labels is an error naming the first few."""
    labels: dict[str, set[str]] = {}
    for path, label in rows:
        labels.setdefault(path, set()).update({label} if label else set())
    conflicts = [(p, sorted(ls)) for p, ls in labels.items() if len(ls) > 1]
    if conflicts:
        shown = "; ".join(f"{Path(p).name}: {', '.join(ls)}" for p, ls in conflicts[:5])
        raise DataError(
            f"{csv_path} gives {len(conflicts)} file(s) two different labels ({shown}); keep one label per file"
        )
    merged = [(p, next(iter(labels[p]), "")) for p in dict.fromkeys(p for p, _ in rows)]
    copies = len(rows) - len(merged)
    notes = (
        [f"{csv_path.name}: {copies} repeated row(s) of the same file were merged into one item"]
        if copies
        else []
    )
    return merged, notes


# Class names of the integer labels of the public data sets (unisal.datasets) that hold no names.
PATHMNIST_CLASSES = [
    "adipose",
    "background",
    "debris",
    "lymphocytes",
    "mucus",
    "smooth muscle",
    "normal colon mucosa",
    "cancer-associated stroma",
    "colorectal adenocarcinoma epithelium",
]
CHAOYANG_CLASSES = ["normal", "serrated", "adenocarcinoma", "adenoma"]

# file or folder name prefix -> class names of integer labels
KNOWN_CLASS_NAMES: dict[str, list[str]] = {"pathmnist": PATHMNIST_CLASSES, "chaoyang": CHAOYANG_CLASSES}


def _class_names_for(path: Path, n_classes: int) -> list[str]:
    """Class names of a known data set (by file or folder name), else ``0 .. C-1``."""
    for prefix, names in KNOWN_CLASS_NAMES.items():
        if path.name.lower().startswith(prefix) and len(names) >= n_classes:
            return list(names)
    return [str(k) for k in range(n_classes)]


def read_npz(npz_path: str | Path) -> Catalogue:
    """A MedMNIST-style .npz file: every ``<split>_images`` with its ``<split>_labels``.

    The file's own splits are merged (unisal makes its own grouped split); each image is
    addressed as ``<file>::<split>/<index>``. Classes are named when the data set is known
    (PathMNIST), else ``0 .. C-1``.
    """
    npz_path = Path(npz_path).resolve()
    if not npz_path.is_file():
        raise DataError(f".npz file not found: {npz_path}")
    try:
        with np.load(npz_path) as npz:
            splits = [k[: -len("_labels")] for k in npz.files if k.endswith("_labels")]
            labels = {s: np.asarray(npz[f"{s}_labels"]).reshape(-1).astype(np.int64) for s in splits}
            missing = [s for s in splits if f"{s}_images" not in npz.files]
    except (OSError, ValueError) as exc:
        raise DataError(f"{npz_path} is not a readable .npz file: {exc}") from exc
    if not splits or missing:
        raise DataError(f"{npz_path} must hold <split>_images and <split>_labels arrays (MedMNIST layout)")
    order = [s for s in ("train", "val", "test") if s in splits] + sorted(
        set(splits) - {"train", "val", "test"}
    )
    ids = tuple(npz_id(str(npz_path), s, i) for s in order for i in range(len(labels[s])))
    all_labels = np.concatenate([labels[s] for s in order])
    if len(all_labels) == 0 or all_labels.min() < 0:
        raise DataError(f"{npz_path} holds no images or negative labels")
    names = _class_names_for(npz_path, int(all_labels.max()) + 1)
    return Catalogue(NpzItems(ids), all_labels, _own_groups(len(ids)), names, str(npz_path.parent))


def read_json_labels(path: str | Path) -> Catalogue:
    """JSON label files: each a list of ``{"name" or "path": image path, "label": class}``.

    ``path`` is one .json file or a folder whose .json files are all read (Chaoyang's
    ``train.json`` and ``test.json``); image paths are relative to the JSON file's folder.
    Integer labels are named when the data set is known (Chaoyang), else ``0 .. C-1``.
    """
    path = Path(path).resolve()
    # a folder's hidden files and unisal's own records (unisal.io.COMPLETE) are no label files
    files = (
        sorted(p for p in path.glob("*.json") if not p.name.startswith(".") and p.name != "complete.json")
        if path.is_dir()
        else [path]
    )
    if not files or not files[0].is_file():
        raise DataError(f"no JSON label files found at {path}")
    rows: list[tuple[str, object]] = []
    for file in files:
        try:
            entries = json.loads(file.read_text())
            rows += [
                (os.path.normpath(file.parent / (e.get("name") or e["path"])), e["label"]) for e in entries
            ]
        except RecursionError:
            raise DataError(f"{file} is nested too deeply to be a JSON list of labels") from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataError(f'{file} is not a JSON list of {{"name": path, "label": class}}: {exc}') from exc
    odd = [
        (p, lab) for p, lab in rows if isinstance(lab, bool) or not isinstance(lab, (int, str)) or lab == ""
    ]
    if odd:  # str(None) would invent a class "None"
        raise DataError(
            f"{len(odd)} label(s) in the JSON files at {path} are not a class name or number, "
            f"e.g. {json.dumps(odd[0][1])} for {odd[0][0]}"
        )
    if not rows:
        raise DataError(f"the JSON label files at {path} list no images")
    missing = [p for p, _ in rows if not Path(p).is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} image(s) listed in the JSON files at {path} do not exist, e.g. {missing[0]}"
        )
    if all(isinstance(lab, int) for _, lab in rows):
        ints = [int(lab) for _, lab in rows]  # type: ignore[call-overload]
        names = _class_names_for(path, max(ints) + 1)
        labels = np.asarray(ints, np.int64)
    else:
        names = sorted({str(lab) for _, lab in rows})
        labels = np.asarray([names.index(str(lab)) for _, lab in rows], np.int64)
    root = path if path.is_dir() else path.parent
    return Catalogue(FileItems(tuple(p for p, _ in rows)), labels, _own_groups(len(rows)), names, str(root))


# A reader takes the data path and its options as keyword arguments (``data.reader_options``,
# ``--reader-option KEY=VALUE``), each a string with a default.
Reader = Callable[..., Catalogue]
READERS: Registry[Reader] = Registry("data format")
_BUILT_IN: dict[str, Reader] = {
    "folder": read_image_folder,
    "prefix": read_prefix_folder,
    "csv": read_csv_list,
    "npz": read_npz,
    "json": read_json_labels,
    "tiles": read_tile_table,
}
for _name, _reader in _BUILT_IN.items():
    READERS.register(_name)(_reader)


def data_formats() -> tuple[str, ...]:
    """``auto`` and every registered reader: the allowed ``data.format`` values."""
    return ("auto", *READERS.names())


def detect_format(path: str | Path) -> str:
    """Guess the layout: ``csv`` for a .csv file, ``folder`` if it holds class sub-folders."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        header = path.open(encoding="utf-8-sig", errors="replace").readline()
        return (
            "tiles" if {"slide", "x", "y", "read_size"} <= {c.strip() for c in header.split(",")} else "csv"
        )
    if path.is_file() and path.suffix.lower() in (".npz", ".json"):
        return path.suffix.lower()[1:]
    if path.is_dir() and any(path.glob("*.json")) and not any(path.glob("*.csv")):
        return "json"
    if not path.is_dir():
        raise DataError(f"data path not found: {path}")
    if any(d.is_dir() and any(is_image_file(p) for p in d.iterdir()) for d in path.iterdir()):
        return "folder"
    if any(is_image_file(p) for p in path.iterdir()):
        return "prefix"
    raise DataError(f"no images found in {path} (empty folder?)")


def reader_options(fmt: str) -> dict[str, str]:
    """The options the reader of ``fmt`` takes, with their defaults (its keyword-only arguments
    that take a string)."""
    params = inspect.signature(READERS.get(fmt)).parameters.values()
    return {
        p.name: p.default
        for p in params
        if p.kind is inspect.Parameter.KEYWORD_ONLY and isinstance(p.default, str)
    }


def check_reader_options(fmt: str, options: dict[str, str]) -> None:
    """DataError naming an option the reader of ``fmt`` does not take, or a value not a string."""
    known = reader_options(fmt)
    for name, value in options.items():
        if name not in known:
            if not known:
                raise DataError(f"the '{fmt}' reader takes no options; remove reader option {name}")
            raise DataError(unknown_name(f"option of the '{fmt}' reader", name, sorted(known)))
        if not isinstance(value, str):
            raise DataError(f"reader option {name} must be a string, not {value!r}")


def load_catalogue(
    path: str | Path,
    fmt: str = "auto",
    groups: str | Path | None = None,
    *,
    options: dict[str, str] | None = None,
) -> Catalogue:
    """Read a data set in any supported layout, with optional groups and reader options."""
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in READERS:
        raise DataError(unknown_name(READERS.kind, fmt, READERS.names()))
    check_reader_options(fmt, options or {})
    catalogue = READERS.get(fmt)(Path(path), **(options or {}))
    return attach_groups(catalogue, groups) if groups else catalogue
