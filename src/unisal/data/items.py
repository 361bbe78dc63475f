"""Items: what a data set, a cache, a split, a run and a project are made of.

An item has a stable id (a string that names it across runs and machines, e.g. an image's path),
and its source knows how to read its pixels, at full size or at a requested size, and how to say
that the bytes behind it changed. A catalogue (``unisal.data.catalogue``) adds each item's label
and group. Sources:

* :class:`FileItems`: one image file per item (PNG, JPEG, TIFF, ...); the id is the path;
* :class:`NpzItems`: rows of the image arrays of a MedMNIST-style ``.npz`` file; the id is
  ``<file.npz>::<split>/<row>``;

and others register themselves in ``ITEM_SOURCES`` (the next one: regions of whole-slide
images). :func:`open_items` turns stored ids (a project's, a run's) back into a source.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

from unisal.data.images import BadImageError, _to_uint8_rgb, load_rgb, resize_square
from unisal.registry import Registry


@runtime_checkable
class ItemSource(Protocol):
    """N items of one kind, addressed by position ``0 .. N-1``."""

    @property
    def kind(self) -> str:
        """The source's name in ``ITEM_SOURCES`` (``file``, ``npz``, ...)."""
        ...

    @property
    def ids(self) -> tuple[str, ...]:
        """The stable id of every item (N,): unique, and the same on every read of the data."""
        ...

    def __len__(self) -> int: ...

    def read(self, i: int) -> np.ndarray:
        """Item ``i``'s pixels as stored, uint8 (H, W, 3). Raises BadImageError."""
        ...

    def read_at(self, i: int, size: int) -> np.ndarray:
        """Item ``i``'s pixels at ``size`` px, uint8 (size, size, 3). Raises BadImageError."""
        ...

    def holder(self, i: int) -> str:
        """The file that holds item ``i`` (its bytes' state is the item's state)."""
        ...

    def content_sha1(self, i: int) -> str:
        """SHA-1 of the bytes that are item ``i`` alone; empty where it has none of its own."""
        ...

    def subset(self, positions: Sequence[int] | np.ndarray) -> ItemSource:
        """The items at ``positions`` (M,), in that order."""
        ...


def file_sha1(path: str) -> str:
    """SHA-1 of a file's bytes; empty when it cannot be read."""
    digest = hashlib.sha1()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return ""
    return digest.hexdigest()


M = TypeVar("M", bound="MemberItems")


class MemberItems:
    """What sources that are a tuple of ids (``members``) share: ids, length, pixels at a size
    (their own pixels, square-resized), subsets of the same kind."""

    members: tuple[str, ...]

    @property
    def ids(self) -> tuple[str, ...]:
        return self.members

    def __len__(self) -> int:
        return len(self.members)

    def read(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def read_at(self, i: int, size: int) -> np.ndarray:
        return resize_square(self.read(i), size)

    def subset(self: M, positions: Sequence[int] | np.ndarray) -> M:
        return type(self)(tuple(self.members[int(i)] for i in positions))  # type: ignore[call-arg]


@dataclass(frozen=True)
class FileItems(MemberItems):
    """One image file per item; the id is the file's path (absolute, or as a reader gave it)."""

    members: tuple[str, ...]
    kind: str = "file"

    def read(self, i: int) -> np.ndarray:
        return load_rgb(self.members[i])

    def holder(self, i: int) -> str:
        return self.members[i]

    def content_sha1(self, i: int) -> str:
        return file_sha1(self.members[i])


NPZ_SEPARATOR = "::"  # an item of an .npz file: <file.npz>::<split>/<row>
_npz_lock = threading.Lock()


@functools.lru_cache(maxsize=2)
def _npz_array(file: str, key: str) -> np.ndarray:
    """One image array of an .npz file, loaded once (files with 224 px images need much memory)."""
    with np.load(file) as npz:
        return np.asarray(npz[key])


def npz_member(item_id: str) -> tuple[str, str, int]:
    """``file.npz::train/12`` -> (``file.npz``, ``train_images``, 12). Raises ValueError."""
    file, separator, member = item_id.partition(NPZ_SEPARATOR)
    split, _, index = member.partition("/")
    if not separator or not split:
        raise ValueError(f"{item_id!r} is not an id of the form <file.npz>::<split>/<row>")
    return file, f"{split}_images", int(index)


def npz_id(file: str, split: str, row: int) -> str:
    return f"{file}{NPZ_SEPARATOR}{split}/{row}"


@dataclass(frozen=True)
class NpzItems(MemberItems):
    """Rows of the ``<split>_images`` arrays of ``.npz`` files (MedMNIST layout)."""

    members: tuple[str, ...]  # ids: <file.npz>::<split>/<row>
    kind: str = "npz"

    def read(self, i: int) -> np.ndarray:
        item_id = self.members[i]
        try:
            file, key, index = npz_member(item_id)
            with _npz_lock:
                array = _npz_array(file, key)
            return _to_uint8_rgb(np.asarray(array[index]))
        except (OSError, KeyError, ValueError, IndexError) as error:
            raise BadImageError(item_id, f"cannot read from the .npz file: {error}") from error

    def holder(self, i: int) -> str:
        return self.members[i].partition(NPZ_SEPARATOR)[0]

    def content_sha1(self, i: int) -> str:
        return ""  # a row has no file of its own: caches are keyed by the file's state


@dataclass(frozen=True)
class MixedItems:
    """Items of several sources in one order (a project that grew from two kinds of data)."""

    parts: tuple[ItemSource, ...]
    where: tuple[tuple[int, int], ...]  # position -> (part, position in the part)
    kind: str = "mixed"

    @functools.cached_property
    def ids(self) -> tuple[str, ...]:
        part_ids = [p.ids for p in self.parts]
        return tuple(part_ids[p][j] for p, j in self.where)

    def __len__(self) -> int:
        return len(self.where)

    def read(self, i: int) -> np.ndarray:
        p, j = self.where[i]
        return self.parts[p].read(j)

    def read_at(self, i: int, size: int) -> np.ndarray:
        p, j = self.where[i]
        return self.parts[p].read_at(j, size)

    def holder(self, i: int) -> str:
        p, j = self.where[i]
        return self.parts[p].holder(j)

    def content_sha1(self, i: int) -> str:
        p, j = self.where[i]
        return self.parts[p].content_sha1(j)

    def subset(self, positions: Sequence[int] | np.ndarray) -> ItemSource:
        ids = self.ids
        return open_items([ids[int(i)] for i in positions])


@dataclass(frozen=True)
class SourceKind:
    """How ids of one kind are recognised and opened (``ITEM_SOURCES``)."""

    claims: Callable[[str], bool]
    open: Callable[[list[str]], ItemSource]


# kind -> how its ids are recognised and opened; the first that claims an id owns it ("file",
# registered last, claims every id the others do not)
ITEM_SOURCES: Registry[SourceKind] = Registry("item source")
ITEM_SOURCES.register("npz")(
    SourceKind(
        lambda i: i.partition(NPZ_SEPARATOR)[0].lower().endswith(".npz") and NPZ_SEPARATOR in i,
        lambda ids: NpzItems(tuple(ids)),
    )
)
ITEM_SOURCES.register("file")(SourceKind(lambda i: True, lambda ids: FileItems(tuple(ids))))


def kind_of(item_id: str) -> str:
    """The registered source kind whose ids look like ``item_id`` (``file`` for a plain path)."""
    file_last = sorted(ITEM_SOURCES.names(), key=lambda name: name == "file")
    return next(name for name in file_last if ITEM_SOURCES.get(name).claims(item_id))


def open_items(ids: Sequence[str]) -> ItemSource:
    """The source of stored item ids (N,), in their order: one kind's source, or a mix."""
    kinds = [kind_of(i) for i in ids]
    order = list(dict.fromkeys(kinds)) or ["file"]
    if len(order) == 1:
        return ITEM_SOURCES.get(order[0]).open(list(ids))
    members: dict[str, list[int]] = {k: [] for k in order}
    for position, k in enumerate(kinds):
        members[k].append(position)
    parts = tuple(ITEM_SOURCES.get(k).open([ids[i] for i in members[k]]) for k in order)
    where: list[tuple[int, int]] = [(0, 0)] * len(ids)
    for p, k in enumerate(order):
        for j, position in enumerate(members[k]):
            where[position] = (p, j)
    return MixedItems(parts, tuple(where))


def as_items(items: ItemSource | Sequence[str]) -> ItemSource:
    """``items`` itself, or the source of a list of stored ids (:func:`open_items`)."""
    return items if isinstance(items, ItemSource) else open_items(list(items))


def holder_state(path: str) -> str:
    """What changes when the file at ``path`` may have changed: size, modification time, inode and
    inode change time (a user can put the modification time back with ``touch -r``, not the
    ctime); ``missing`` where there is no file."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{st.st_ctime_ns}"
