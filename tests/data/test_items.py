"""Items (unisal.data.items): ids, pixels at a size, stored ids opened again, a new kind of source
registered by a plug-in and used by the decoded-image cache; and readers' options."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from unisal.cli.main import cli
from unisal.config import build_config
from unisal.data.cache import build_cache, image_cache_key
from unisal.data.catalogue import DataError
from unisal.data.images import BadImageError, resize_square
from unisal.data.items import (
    ITEM_SOURCES,
    FileItems,
    MixedItems,
    NpzItems,
    SourceKind,
    kind_of,
    open_items,
)
from unisal.data.readers import load_catalogue, reader_options
from unisal.loop import check_run_settings


def test_file_and_npz_items_read_their_pixels_at_any_size(
    make_image_folder: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_image_folder(classes={"A": 2, "B": 1}, size=20)
    catalogue = load_catalogue(root)
    assert isinstance(catalogue.items, FileItems) and catalogue.items.kind == "file"
    full = catalogue.items.read(2)
    assert full.shape == (20, 20, 3) and full.dtype == np.uint8
    np.testing.assert_array_equal(catalogue.items.read_at(2, 8), resize_square(full, 8))
    assert catalogue.items.holder(2) == catalogue.ids[2] == str(root / "B" / "B_0.png")

    arrays = np.random.default_rng(0).integers(0, 255, size=(5, 12, 12, 3), dtype=np.uint8)
    np.savez(tmp_path / "set.npz", train_images=arrays, train_labels=np.arange(5) % 2)
    npz = load_catalogue(tmp_path / "set.npz")
    assert isinstance(npz.items, NpzItems)
    assert npz.ids[3] == f"{tmp_path / 'set.npz'}::train/3" and npz.items.holder(3) == str(
        tmp_path / "set.npz"
    )
    np.testing.assert_array_equal(npz.items.read(3), arrays[3])
    assert npz.items.read_at(3, 6).shape == (6, 6, 3) and npz.items.content_sha1(3) == ""
    with pytest.raises(BadImageError, match="cannot read from the .npz file"):
        NpzItems((f"{tmp_path / 'set.npz'}::train/9",)).read(0)


def test_stored_ids_open_as_their_sources_in_their_order(
    make_image_folder: Callable[..., Path], tmp_path: Path
) -> None:
    """A project's ids (files and .npz rows mixed) come back as one source, order kept."""
    files = load_catalogue(make_image_folder(classes={"A": 2, "B": 2}, size=8)).ids
    arrays = np.full((3, 8, 8, 3), 7, np.uint8)
    np.savez(tmp_path / "x.npz", train_images=arrays, train_labels=np.zeros(3))
    rows = [f"{tmp_path / 'x.npz'}::train/{i}" for i in range(3)]
    ids = [files[0], rows[2], files[1], rows[0]]
    items = open_items(ids)
    assert isinstance(items, MixedItems) and list(items.ids) == ids
    assert [kind_of(i) for i in ids] == ["file", "npz", "file", "npz"]
    assert items.read(1).max() == 7 and items.holder(1) == str(tmp_path / "x.npz")
    assert items.read(0).shape == (8, 8, 3)
    assert list(items.subset([3, 0]).ids) == [rows[0], files[0]]
    assert isinstance(open_items(files), FileItems) and isinstance(open_items(rows), NpzItems)
    assert open_items(files).subset(np.array([1])).ids == (files[1],)


@dataclass(frozen=True)
class PlainColours:
    """A source of a plug-in: item ``colour:R,G,B`` is a 10 px square of that colour."""

    members: tuple[str, ...]
    kind: str = "colour"

    @property
    def ids(self) -> tuple[str, ...]:
        return self.members

    def __len__(self) -> int:
        return len(self.members)

    def read(self, i: int) -> np.ndarray:
        rgb = [int(v) for v in self.members[i].removeprefix("colour:").split(",")]
        return np.broadcast_to(np.asarray(rgb, np.uint8), (10, 10, 3)).copy()

    def read_at(self, i: int, size: int) -> np.ndarray:
        return resize_square(self.read(i), size)

    def holder(self, i: int) -> str:
        return ""  # no file: its state never changes

    def content_sha1(self, i: int) -> str:
        return ""

    def subset(self, positions: Sequence[int] | np.ndarray) -> PlainColours:
        return PlainColours(tuple(self.members[int(i)] for i in positions))


def test_a_registered_source_serves_the_decoded_image_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The cache asks the items for pixels: a new kind (slide regions, next) needs no change there."""
    kind = SourceKind(lambda i: i.startswith("colour:"), lambda ids: PlainColours(tuple(ids)))
    monkeypatch.setitem(ITEM_SOURCES._items, "colour", kind)
    items = open_items(["colour:255,0,0", "colour:0,0,255"])
    assert isinstance(items, PlainColours)
    array, bad = build_cache(items, 4, cache_dir=tmp_path / "cache", workers=1)
    assert bad == [] and array.shape == (2, 4, 4, 3)
    assert array[0, 0, 0].tolist() == [255, 0, 0] and array[1, 3, 3].tolist() == [0, 0, 255]
    key = image_cache_key(items, 4, tmp_path / "cache")[0]
    assert key == image_cache_key(["colour:255,0,0", "colour:0,0,255"], 4, tmp_path / "cache")[0]
    assert key != image_cache_key(items.subset([1, 0]), 4, tmp_path / "cache")[0]  # order counts


def test_readers_take_options_and_name_a_wrong_one(
    make_image_folder: Callable[..., Path], tmp_path: Path
) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    root = make_image_folder(classes={"TUM": 2, "STR": 2}, size=8)
    for path in sorted(root.rglob("*.png")):  # TUM_0.png -> TUM_0.png in one folder: '_' ends the class
        (flat / path.name).write_bytes(path.read_bytes())
    with pytest.raises(DataError, match="no class prefix ending in '-'"):
        load_catalogue(flat, "prefix")
    assert load_catalogue(flat, "prefix", options={"separator": "_"}).class_names == ["STR", "TUM"]
    with pytest.raises(
        DataError, match="unknown option of the 'prefix' reader 'seperator'; did you mean 'separator'"
    ):
        load_catalogue(flat, "prefix", options={"seperator": "_"})
    with pytest.raises(DataError, match="the 'folder' reader takes no options"):
        load_catalogue(root, "folder", options={"separator": "_"})
    assert reader_options("csv") == {"classes": "", "path_column": "path", "label_column": "label"}

    (tmp_path / "list.csv").write_text(
        "file,class\n" + "".join(f"flat/{p.name},{p.name[:3]}\n" for p in flat.iterdir())
    )
    with pytest.raises(DataError, match="--reader-option path_column"):
        load_catalogue(tmp_path / "list.csv")
    listed = load_catalogue(
        tmp_path / "list.csv", options={"path_column": "file", "label_column": "class", "classes": "TUM,STR"}
    )
    assert listed.class_names == ["TUM", "STR"] and len(listed) == 4


def test_a_wrong_reader_option_stops_a_run_before_any_work(tmp_path: Path) -> None:
    cfg = build_config(
        "cpu", {"data": {"path": str(tmp_path), "format": "csv", "reader_options": {"sep": ";"}}}
    )
    with pytest.raises(DataError, match="unknown option of the 'csv' reader 'sep'"):
        check_run_settings(cfg)
    result = CliRunner().invoke(cli, ["simulate", "--data", str(tmp_path), "--reader-option", "separator"])
    assert result.exit_code == 2 and "'separator' is not KEY=VALUE" in result.output
