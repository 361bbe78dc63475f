"""Issue 8, items 2 and 4: duplicate CSV rows, byte-identical files and classes missing from a split."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from unisal.config import DataConfig
from unisal.data.cache import join_identical
from unisal.data.catalogue import DataError
from unisal.data.prepare import prepare_data
from unisal.data.readers import load_catalogue


def test_repeated_csv_rows_merge_and_conflicting_labels_are_refused(make_image_folder, tmp_path: Path):
    root = make_image_folder(classes={"A": 3, "B": 3})
    rows = [
        "path,label",
        "A/A_0.png,A",
        "A/A_0.png,A",
        "A/A_1.png,A",
        "B/B_0.png,B",
        "B/B_1.png,",
        "B/B_1.png,B",
    ]
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    catalogue = load_catalogue(root / "list.csv")
    assert len(catalogue) == 4 and catalogue.labels.tolist() == [0, 0, 1, 1]
    assert catalogue.notes == ["list.csv: 2 repeated row(s) of the same file were merged into one item"]
    (root / "bad.csv").write_text("path,label\nA/A_0.png,A\nA/A_0.png,B\n")
    with pytest.raises(DataError, match=r"gives 1 file\(s\) two different labels \(A_0.png: A, B\)"):
        load_catalogue(root / "bad.csv")


def test_join_identical_unions_the_groups_of_identical_files():
    groups = np.array([0, 1, 2, 3, 4])
    hashes = ["x", "y", "x", "z", "y"]
    joined, n_sets, n_joined = join_identical(groups, hashes)
    assert (n_sets, n_joined) == (2, 2)
    assert joined[0] == joined[2] and joined[1] == joined[4] and len(set(joined.tolist())) == 3
    same, _, none = join_identical(np.array([5, 5, 6]), ["h", "h", ""])
    assert none == 0 and same.tolist() == [5, 5, 6]


def test_byte_identical_files_never_straddle_splits_whatever_groups_say(make_image_folder, tmp_path: Path):
    root = make_image_folder(classes={"A": 10, "B": 10})
    for k in range(4):  # copies of one image under other names, each in a group of its own
        shutil.copy(root / "A" / "A_0.png", root / "A" / f"copy_{k}.png")
    (tmp_path / "groups.csv").write_text("path,group\n" + "".join(f"A/copy_{k}.png,g{k}\n" for k in range(4)))
    for seed in range(5):
        data = prepare_data(
            DataConfig(path=str(root), groups=str(tmp_path / "groups.csv"), image_size=16,
                       cache_dir=str(tmp_path / "c"), val_fraction=0.2, test_fraction=0.3), seed)  # fmt: skip
        names = [Path(p).name for p in data.catalogue.ids]
        copies = [
            data.split[names.index(n)]
            for n in ("A_0.png", "copy_0.png", "copy_1.png", "copy_2.png", "copy_3.png")
        ]
        assert len(set(copies)) == 1
    assert (
        "1 set(s) of byte-identical files: each set kept in one group (1 joined groups that --groups had kept apart)"
        in data.notes
    )


def test_a_class_missing_from_the_test_split_is_warned_about(make_image_folder, tmp_path: Path):
    root = make_image_folder(classes={"A": 6, "B": 6, "rare": 1})
    data = prepare_data(DataConfig(path=str(root), image_size=16, cache_dir=str(tmp_path / "c")), 0)
    warnings = [n for n in data.notes if n.startswith("warning:")]
    assert any("class(es) rare have no image in the" in w for w in warnings)
    assert any(
        "its recall and F1 count as 0 in the macro averages" in w or "model selection never sees it" in w
        for w in warnings
    )
