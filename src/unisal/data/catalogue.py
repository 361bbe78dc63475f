"""A catalogue: the items of a data set with their labels (or none) and groups.

Readers (``unisal.data.readers``) make one from a user's data; ``attach_groups`` ties items
that must stay in one split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unisal.data.items import ItemSource
from unisal.errors import DataError, UnknownClassError
from unisal.io import read_csv_rows

__all__ = ["UNLABELLED", "Catalogue", "DataError", "UnknownClassError", "attach_groups"]

UNLABELLED = -1


@dataclass
class Catalogue:
    """All items of a data set, labelled or not.

    Attributes:
        items: the N items (``unisal.data.items``): their ids and how to read their pixels.
        labels: int64 class indices, shape (N,); ``UNLABELLED`` (-1) where unknown.
        groups: int64 group ids, shape (N,); images of one group never straddle splits.
        class_names: names of the classes, indexed by label.
        root: folder that relative paths in CSVs and outputs refer to.
    """

    items: ItemSource
    labels: np.ndarray
    groups: np.ndarray
    class_names: list[str]
    root: str
    notes: list[str] = field(default_factory=list)  # what the reader merged or changed, to report

    def __len__(self) -> int:
        return len(self.items)

    @property
    def ids(self) -> tuple[str, ...]:
        """Every item's stable id (N,): an image's path, ``file.npz::split/row``, ..."""
        return self.items.ids

    def relative(self, i: int) -> str:
        """Item ``i``'s id relative to ``root`` where it lies under it (what outputs name)."""
        path = Path(self.items.ids[i])
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
            items=self.items.subset(keep_idx),
            labels=self.labels[keep_idx],
            groups=self.groups[keep_idx],
            class_names=self.class_names,
            root=self.root,
            notes=self.notes,
        )


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
    index.update({item_id: i for i, item_id in enumerate(catalogue.ids)})
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
        catalogue.items, catalogue.labels, groups, catalogue.class_names, catalogue.root, catalogue.notes
    )


# data layout name -> reader: the ``--format`` choices (``auto`` guesses one, see detect_format)
