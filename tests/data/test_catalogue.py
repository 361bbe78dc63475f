"""Readers for class folders, file-name prefixes, CSV lists and group CSVs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from unisal.data.catalogue import UNLABELLED, Catalogue, DataError, UnknownClassError, attach_groups
from unisal.data.readers import (
    detect_format,
    load_catalogue,
    read_csv_list,
    read_image_folder,
    read_prefix_folder,
)

KATHER_CLASSES = [
    "01_TUMOR",
    "02_STROMA",
    "03_COMPLEX",
    "04_LYMPHO",
    "05_DEBRIS",
    "06_MUCOSA",
    "07_ADIPOSE",
    "08_EMPTY",
]
CRC_VAL_CLASSES = ["ADI", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM"]
NCT_CLASSES = ["ADI", "BACK", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM"]


def _write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


# --- real tiles -------------------------------------------------------------------------------


def test_read_image_folder_kather2016(crc_samples: Path) -> None:
    catalogue = read_image_folder(crc_samples / "kather2016")
    assert len(catalogue) == 24
    assert catalogue.class_names == KATHER_CLASSES
    np.testing.assert_array_equal(np.bincount(catalogue.labels), [3] * 8)
    # Each image's label is the folder it sits in; every image is its own group.
    for path, label in zip(catalogue.ids, catalogue.labels, strict=True):
        assert Path(path).parent.name == KATHER_CLASSES[label]
        assert Path(path).is_absolute()
    np.testing.assert_array_equal(catalogue.groups, np.arange(24))


def test_load_catalogue_detects_folder_layout(crc_samples: Path) -> None:
    root = crc_samples / "kather2016"
    assert detect_format(root) == "folder"
    catalogue = load_catalogue(root)
    assert len(catalogue) == 24
    assert catalogue.class_names == KATHER_CLASSES


def test_load_catalogue_detects_prefix_layout_crc_val(crc_samples: Path) -> None:
    root = crc_samples / "crc-val-he-7k"
    assert detect_format(root) == "prefix"
    catalogue = load_catalogue(root)
    assert len(catalogue) == 32
    assert catalogue.class_names == CRC_VAL_CLASSES
    np.testing.assert_array_equal(np.bincount(catalogue.labels), [4] * 8)
    for path, label in zip(catalogue.ids, catalogue.labels, strict=True):
        assert Path(path).name.startswith(CRC_VAL_CLASSES[label] + "-")


def test_load_catalogue_detects_prefix_layout_nct(crc_samples: Path) -> None:
    root = crc_samples / "nct-crc-he-100k"
    assert detect_format(root) == "prefix"
    catalogue = load_catalogue(root)
    assert len(catalogue) == 9
    assert catalogue.class_names == NCT_CLASSES
    np.testing.assert_array_equal(np.bincount(catalogue.labels), [1] * 9)
    assert Path(catalogue.ids[catalogue.class_index("BACK")]).name.startswith("BACK-")


def test_class_index_of_unknown_class_names_it(crc_samples: Path) -> None:
    catalogue = read_prefix_folder(crc_samples / "crc-val-he-7k")
    assert catalogue.class_index("TUM") == 7
    with pytest.raises(UnknownClassError, match="'TUMOUR'"):
        catalogue.class_index("TUMOUR")


@pytest.fixture(scope="module")
def lung_catalogue(lung_dir: Path) -> Catalogue:
    """LC25000 lung with its near-duplicate groups (folder listing only, nothing decoded)."""
    return attach_groups(load_catalogue(lung_dir), lung_dir / "groups.csv")


def test_attach_groups_lc25000(lung_catalogue: Catalogue) -> None:
    assert len(lung_catalogue) == 15000
    assert lung_catalogue.class_names == ["lung_aca", "lung_n", "lung_scc"]
    np.testing.assert_array_equal(np.bincount(lung_catalogue.labels), [5000, 5000, 5000])
    assert len(np.unique(lung_catalogue.groups)) == 1746
    # The README's per-class group counts: 561 / 595 / 590; no group mixes classes.
    per_class = [len(np.unique(lung_catalogue.groups[lung_catalogue.labels == k])) for k in range(3)]
    assert per_class == [561, 595, 590]
    assert sum(per_class) == 1746


def test_load_catalogue_with_groups_matches_attach_groups(lung_dir: Path, lung_catalogue: Catalogue) -> None:
    catalogue = load_catalogue(lung_dir, groups=lung_dir / "groups.csv")
    np.testing.assert_array_equal(catalogue.groups, lung_catalogue.groups)


# --- synthetic folders and CSVs ---------------------------------------------------------------


def test_read_image_folder_synthetic_sorted_classes(make_image_folder: Callable[..., Path]) -> None:
    root = make_image_folder(classes={"b": 2, "a": 3}, size=8)
    catalogue = read_image_folder(root)
    assert catalogue.class_names == ["a", "b"]
    np.testing.assert_array_equal(catalogue.labels, [0, 0, 0, 1, 1])
    assert catalogue.relative(0) == "a/a_0.png"


def test_read_image_folder_ignores_non_images_and_empty_class_folders(
    make_image_folder: Callable[..., Path],
) -> None:
    root = make_image_folder(classes={"a": 2, "b": 2}, size=8)
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "a" / ".hidden.png").write_bytes(b"")
    (root / "empty").mkdir()
    catalogue = read_image_folder(root)
    assert catalogue.class_names == ["a", "b"]
    assert len(catalogue) == 4


def test_empty_folder_is_a_data_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_catalogue(empty)
    with pytest.raises(DataError, match="no images found"):
        read_image_folder(empty)
    with pytest.raises(DataError, match="no images found"):
        read_prefix_folder(empty)


def test_missing_folder_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_catalogue(tmp_path / "nowhere")


def test_single_class_folder_is_a_data_error(make_image_folder: Callable[..., Path]) -> None:
    root = make_image_folder(classes={"only": 3}, size=8)
    with pytest.raises(DataError, match="only one class"):
        read_image_folder(root)


def test_prefix_file_without_separator_is_a_data_error(
    make_image_folder: Callable[..., Path],
) -> None:
    root = make_image_folder(classes={"flat": 2}, size=8) / "flat"
    (root / "flat_0.png").rename(root / "ADI-x.png")
    with pytest.raises(DataError, match="flat_1.png"):
        read_prefix_folder(root)


def test_read_csv_list_relative_paths_and_unlabelled_row(
    make_image_folder: Callable[..., Path],
) -> None:
    root = make_image_folder(classes={"A": 2, "B": 2}, size=8)
    csv_path = _write_csv(
        root / "list.csv",
        "path,label",
        ["B/B_0.png,B", "A/A_0.png,A", "A/A_1.png,", str(root / "B" / "B_1.png") + ",B"],
    )
    catalogue = read_csv_list(csv_path)
    assert catalogue.class_names == ["A", "B"]
    np.testing.assert_array_equal(catalogue.labels, [1, 0, UNLABELLED, 1])
    assert catalogue.labels[2] == -1
    assert catalogue.ids[0] == str((root / "B" / "B_0.png").resolve())
    assert catalogue.root == str(root.resolve())
    assert catalogue.relative(1) == "A/A_0.png"
    assert detect_format(csv_path) == "csv"
    assert len(load_catalogue(csv_path)) == 4


def test_read_csv_list_keeps_a_fixed_class_order(make_image_folder: Callable[..., Path]) -> None:
    root = make_image_folder(classes={"A": 1, "B": 1}, size=8)
    csv_path = _write_csv(root / "list.csv", "path,label", ["A/A_0.png,A", "B/B_0.png,B"])
    catalogue = read_csv_list(csv_path, class_names=["C", "B", "A"])
    assert catalogue.class_names == ["C", "B", "A"]
    np.testing.assert_array_equal(catalogue.labels, [2, 1])


def test_read_csv_list_unknown_class_names_it(make_image_folder: Callable[..., Path]) -> None:
    root = make_image_folder(classes={"A": 1, "B": 1}, size=8)
    csv_path = _write_csv(root / "list.csv", "path,label", ["A/A_0.png,A", "B/B_0.png,TUMOUR"])
    with pytest.raises(UnknownClassError, match="'TUMOUR'"):
        read_csv_list(csv_path, class_names=["A", "B"])


def test_read_csv_list_missing_image_is_a_data_error(
    make_image_folder: Callable[..., Path],
) -> None:
    root = make_image_folder(classes={"A": 1, "B": 1}, size=8)
    csv_path = _write_csv(root / "list.csv", "path,label", ["A/A_0.png,A", "B/gone.png,B"])
    with pytest.raises(DataError, match="gone.png"):
        read_csv_list(csv_path)


def test_read_csv_list_missing_columns_is_a_data_error(
    make_image_folder: Callable[..., Path],
) -> None:
    root = make_image_folder(classes={"A": 1, "B": 1}, size=8)
    csv_path = _write_csv(root / "list.csv", "file,class", ["A/A_0.png,A"])
    with pytest.raises(DataError, match="'path' and 'label'"):
        read_csv_list(csv_path)


def test_read_csv_list_without_rows_is_a_data_error(tmp_path: Path) -> None:
    csv_path = _write_csv(tmp_path / "list.csv", "path,label", [])
    with pytest.raises(DataError, match="lists no images"):
        read_csv_list(csv_path)


def test_attach_groups_unknown_path_is_a_data_error(make_image_folder: Callable[..., Path]) -> None:
    root = make_image_folder(classes={"A": 2, "B": 2}, size=8)
    groups_csv = _write_csv(root / "groups.csv", "path,group", ["A/A_0.png,g1", "C/other.png,g2"])
    with pytest.raises(DataError, match="C/other.png"):
        attach_groups(read_image_folder(root), groups_csv)


def test_attach_groups_missing_columns_is_a_data_error(
    make_image_folder: Callable[..., Path],
) -> None:
    root = make_image_folder(classes={"A": 2, "B": 2}, size=8)
    groups_csv = _write_csv(root / "groups.csv", "path,cluster", ["A/A_0.png,g1"])
    with pytest.raises(DataError, match="'path' and 'group'"):
        attach_groups(read_image_folder(root), groups_csv)


def test_attach_groups_gives_unlisted_images_their_own_groups(
    make_image_folder: Callable[..., Path],
) -> None:
    root = make_image_folder(classes={"A": 3, "B": 3}, size=8)
    catalogue = read_image_folder(root)  # A_0 A_1 A_2 B_0 B_1 B_2
    groups_csv = _write_csv(
        root / "groups.csv",
        "path,group",
        ["A/A_0.png,x", "B/B_0.png,x", str(root.resolve() / "A" / "A_1.png") + ",y"],
    )
    grouped = attach_groups(catalogue, groups_csv)
    g = grouped.groups
    assert g[0] == g[3]  # A_0 and B_0 share group x (relative paths)
    assert g[1] != g[0]  # A_1 alone is in group y (absolute path)
    assert np.count_nonzero(g == g[1]) == 1
    # A_2, B_1, B_2 are unlisted: each gets a group no other image has.
    for i in (2, 4, 5):
        assert np.count_nonzero(g == g[i]) == 1
    assert len(np.unique(g)) == 5
    # Labels and paths are untouched.
    np.testing.assert_array_equal(grouped.labels, catalogue.labels)
    assert grouped.ids == catalogue.ids


def test_csv_paths_through_a_symlink_are_kept_as_given_relative_or_absolute(
    make_image_folder: Callable[..., Path], tmp_path: Path
) -> None:
    """A relative path through a linked folder is joined to the CSV's folder, not resolved to the
    link's target: the same file written relative or absolute is one path, the one given."""
    root = make_image_folder(classes={"A": 1, "B": 1}, size=8)
    data = tmp_path / "data"
    data.mkdir()
    (data / "tiles").symlink_to(root, target_is_directory=True)
    csv_file = data / "list.csv"
    csv_file.write_text(f"path,label\ntiles/A/A_0.png,A\n{data}/tiles/B/B_0.png,B\ntiles/./B/B_0.png,B\n")
    catalogue = read_csv_list(csv_file)
    assert list(catalogue.ids) == [
        str(data / "tiles" / "A" / "A_0.png"),
        str(data / "tiles" / "B" / "B_0.png"),
    ]
    assert catalogue.notes == ["list.csv: 1 repeated row(s) of the same file were merged into one item"]


@pytest.mark.parametrize("which", ["data", "groups"])
def test_a_csv_that_is_not_utf8_is_one_line_naming_the_encoding(
    make_image_folder: Callable[..., Path], tmp_path: Path, which: str
) -> None:
    from unisal.errors import InputFileError

    root = make_image_folder(classes={"A": 1, "B": 1}, size=8)
    latin1 = "path,{}\nA/A_0.png,caf\xe9\n".format("label" if which == "data" else "group").encode("latin-1")
    (tmp_path / "x.csv").write_bytes(latin1)
    with pytest.raises(InputFileError) as excinfo:
        if which == "data":
            read_csv_list(tmp_path / "x.csv")
        else:
            attach_groups(read_image_folder(root), tmp_path / "x.csv")
    assert str(excinfo.value) == (
        f"{tmp_path / 'x.csv'} is not UTF-8 text (byte 0xe9 at offset {len(latin1) - 2}): save it as UTF-8 CSV"
    )


def test_a_groups_row_without_a_group_is_named(
    make_image_folder: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_image_folder(classes={"A": 2, "B": 1}, size=8)
    (tmp_path / "g.csv").write_text("path,group\nA/A_0.png,p1\nA/A_1.png,\nB/B_0.png\n")
    with pytest.raises(DataError) as excinfo:
        attach_groups(read_image_folder(root), tmp_path / "g.csv")
    assert str(excinfo.value) == (
        f"{tmp_path / 'g.csv'}: 2 row(s) without a group, e.g. line 3 (A/A_1.png); "
        "give every listed image a group, or leave it out to give it a group of its own"
    )


def test_an_image_given_two_groups_is_named(make_image_folder: Callable[..., Path], tmp_path: Path) -> None:
    """Listed twice with two groups (also once relative, once absolute): refused, naming it, for the
    last row winning would leave a group-mate of a test image in the pool."""
    root = make_image_folder(classes={"A": 2, "B": 1}, size=8)
    for rows in ("A/A_0.png,p2\nB/B_0.png,p2\nA/A_0.png,p1\n", f"A/A_0.png,p2\n{root}/A/A_0.png,p1\n"):
        (tmp_path / "g.csv").write_text("path,group\n" + rows)
        with pytest.raises(DataError) as excinfo:
            attach_groups(read_image_folder(root), tmp_path / "g.csv")
        assert str(excinfo.value) == (
            f"{tmp_path / 'g.csv'} gives 1 image(s) two different groups, e.g. A/A_0.png (p1, p2); "
            "give each image one group"
        )
    (tmp_path / "g.csv").write_text(
        f"path,group\nA/A_0.png,p2\n{root}/A/A_0.png,p2\n"
    )  # the same group twice: fine
    assert len(set(attach_groups(read_image_folder(root), tmp_path / "g.csv").groups.tolist())) == 3
