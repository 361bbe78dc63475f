"""Readers that turn a user's data into one catalogue of (image, label-or-unknown, group).

These layouts (``READERS``, the ``--format`` choices) are understood:

* ``folder``: one sub-folder per class (Kather 2016, NCT-CRC-HE-100K, LC25000);
* ``prefix``: a flat folder whose file names start with the class (``ADI-TCGA-AAA.png``);
* ``csv``: a CSV with columns ``path,label`` (label may be empty for unlabelled rows);
* ``npz``: a MedMNIST-style ``.npz`` file (``train_images``, ``train_labels``, ``val_…``, ``test_…``);
* ``json``: JSON label files (Chaoyang): a list of ``{"name": path, "label": class}``, or a folder
  holding such files;

and an optional groups CSV (``path,group``) ties images that must stay in one split.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unisal.data.images import NPZ_SEPARATOR, is_image_file
from unisal.errors import DataError, UnknownClassError
from unisal.io import read_csv_rows
from unisal.registry import Registry, unknown_name

UNLABELLED = -1


@dataclass
class Catalogue:
    """All images of a data set, labelled or not.

    Attributes:
        paths: absolute image paths, length N.
        labels: int64 class indices, shape (N,); ``UNLABELLED`` (-1) where unknown.
        groups: int64 group ids, shape (N,); images of one group never straddle splits.
        class_names: names of the classes, indexed by label.
        root: folder that relative paths in CSVs and outputs refer to.
    """

    paths: list[str]
    labels: np.ndarray
    groups: np.ndarray
    class_names: list[str]
    root: str
    notes: list[str] = field(default_factory=list)  # what the reader merged or changed, to report

    def __len__(self) -> int:
        return len(self.paths)

    def relative(self, i: int) -> str:
        path = Path(self.paths[i])
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def class_index(self, name: str) -> int:
        try:
            return self.class_names.index(name)
        except ValueError:
            raise UnknownClassError(f"'{name}' is not one of the classes {self.class_names}") from None

    def subset(self, keep: np.ndarray) -> Catalogue:
        """Catalogue of the rows where the boolean mask ``keep`` (N,) is true."""
        keep_idx = np.flatnonzero(keep)
        return Catalogue(
            paths=[self.paths[i] for i in keep_idx],
            labels=self.labels[keep_idx],
            groups=self.groups[keep_idx],
            class_names=self.class_names,
            root=self.root,
            notes=self.notes,
        )


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
    return Catalogue(paths, np.asarray(labels, np.int64), _own_groups(len(paths)), class_names, str(root))


def read_prefix_folder(root: str | Path, separator: str = "-") -> Catalogue:
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
    return Catalogue([str(p) for p in images], labels, _own_groups(len(images)), class_names, str(root))


def read_csv_list(csv_path: str | Path, class_names: list[str] | None = None) -> Catalogue:
    """CSV with a header containing ``path`` and ``label``; relative paths are relative to the CSV.

    Rows with an empty label are unlabelled. ``class_names`` fixes the class order; otherwise it
    is the sorted set of labels present.
    """
    csv_path = Path(csv_path).resolve()
    if not csv_path.is_file():
        raise DataError(f"CSV file not found: {csv_path}")
    fields, records = read_csv_rows(csv_path)
    if "path" not in fields or "label" not in fields:
        raise DataError(f"{csv_path} must have a header with columns 'path' and 'label'; got {fields}")
    rows = [((r["path"] or "").strip(), (r["label"] or "").strip()) for r in records if r["path"]]
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
    return Catalogue(paths, labels, _own_groups(len(paths)), names, str(root), notes)


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
    paths = [f"{npz_path}{NPZ_SEPARATOR}{s}/{i}" for s in order for i in range(len(labels[s]))]
    all_labels = np.concatenate([labels[s] for s in order])
    if len(all_labels) == 0 or all_labels.min() < 0:
        raise DataError(f"{npz_path} holds no images or negative labels")
    names = _class_names_for(npz_path, int(all_labels.max()) + 1)
    return Catalogue(paths, all_labels, _own_groups(len(paths)), names, str(npz_path.parent))


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
    return Catalogue([p for p, _ in rows], labels, _own_groups(len(rows)), names, str(root))


def attach_groups(catalogue: Catalogue, groups_csv: str | Path) -> Catalogue:
    """Set group ids from a CSV ``path,group`` (paths relative to the catalogue root or absolute).

    Images missing from the CSV keep a group of their own; unknown CSV paths are an error
    (they usually mean the CSV belongs to another data set).
    """
    groups_csv = Path(groups_csv)
    if not groups_csv.is_file():
        raise DataError(f"groups CSV not found: {groups_csv}")
    fields, records = read_csv_rows(groups_csv)
    if "path" not in fields or "group" not in fields:
        raise DataError(f"{groups_csv} must have a header with columns 'path' and 'group'")
    listed = [(line, r) for line, r in enumerate(records, start=2) if (r["path"] or "").strip()]
    empty = [(line, r["path"].strip()) for line, r in listed if not (r["group"] or "").strip()]
    if empty:
        line, path = empty[0]
        raise DataError(
            f"{groups_csv}: {len(empty)} row(s) without a group, e.g. line {line} ({path}); "
            "give every listed image a group, or leave it out to give it a group of its own"
        )
    pairs = [(r["path"].strip(), r["group"].strip()) for _, r in listed]
    index = {catalogue.relative(i): i for i in range(len(catalogue))}
    index.update({catalogue.paths[i]: i for i in range(len(catalogue))})
    unknown = [p for p, _ in pairs if p not in index]
    if unknown:
        raise DataError(
            f"{len(unknown)} path(s) in {groups_csv} are not in the data set at {catalogue.root}, "
            f"e.g. {unknown[0]}"
        )
    given: dict[int, set[str]] = {}  # by image, not by spelling: relative and absolute are one image
    for path, name in pairs:
        given.setdefault(index[path], set()).add(name)
    twice = [(i, sorted(names)) for i, names in given.items() if len(names) > 1]
    if twice:  # the last row winning would split a group, and could leave a test image's mate in the pool
        first, shown = twice[0]
        raise DataError(
            f"{groups_csv} gives {len(twice)} image(s) two different groups, e.g. "
            f"{catalogue.relative(first)} ({', '.join(shown)}); give each image one group"
        )
    group_names: dict[str, int] = {}
    groups = np.full(len(catalogue), -1, np.int64)
    for i, one in given.items():
        groups[i] = group_names.setdefault(next(iter(one)), len(group_names))
    loose = groups < 0
    groups[loose] = len(group_names) + np.arange(int(loose.sum()))
    return Catalogue(
        catalogue.paths, catalogue.labels, groups, catalogue.class_names, catalogue.root, catalogue.notes
    )


# data layout name -> reader: the ``--format`` choices (``auto`` guesses one, see detect_format)
READERS: Registry[Callable[[Path], Catalogue]] = Registry("data format")
_BUILT_IN: dict[str, Callable[[Path], Catalogue]] = {
    "folder": read_image_folder,
    "prefix": read_prefix_folder,
    "csv": read_csv_list,
    "npz": read_npz,
    "json": read_json_labels,
}
for _name, _reader in _BUILT_IN.items():
    READERS.register(_name)(_reader)


def data_formats() -> tuple[str, ...]:
    """``auto`` and every registered reader: the allowed ``data.format`` values."""
    return ("auto", *READERS.names())


def detect_format(path: str | Path) -> str:
    """Guess the layout: ``csv`` for a .csv file, ``folder`` if it holds class sub-folders."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in (".csv", ".npz", ".json"):
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


def load_catalogue(path: str | Path, fmt: str = "auto", groups: str | Path | None = None) -> Catalogue:
    """Read a data set in any supported layout, with optional groups."""
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in READERS:
        raise DataError(unknown_name(READERS.kind, fmt, READERS.names()))
    catalogue = READERS.get(fmt)(Path(path))
    return attach_groups(catalogue, groups) if groups else catalogue
