"""Project init: groups are connected components (CSV group or same bytes) that are held out
whole, class names from the class folders, unreadable images and non-UTF-8 CSVs refused."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from unisal.app.project import init_project, open_project, plan_project
from unisal.app.store import ProjectError
from unisal.cli.main import cli
from unisal.errors import InputFileError

CLASSES = ["red", "green", "blue"]


@pytest.fixture
def tiles(make_image_folder) -> Path:
    return make_image_folder(classes={"red": 4, "green": 4, "blue": 4}, size=16)


def splits(folder: Path) -> dict[str, str]:
    return {r["path"]: r["split"] for r in open_project(folder).images()}


def test_a_copy_and_a_group_mate_of_a_test_image_are_held_out_and_never_queued(tiles: Path, tmp_path: Path):
    shutil.copy(tiles / "red" / "red_0.png", tiles / "blue" / "copy_of_red_0.png")
    (tmp_path / "test.csv").write_text("path,label\nred/red_0.png,red\n")
    (tmp_path / "groups.csv").write_text("path,group\ngreen/green_0.png,patient7\nred/red_0.png,patient7\n")
    plan = plan_project(
        images=tiles, classes=CLASSES, test_csv=tmp_path / "test.csv", groups_csv=tmp_path / "groups.csv"
    )
    assert plan.notes == [
        "2 image(s) share a group with a --test image and are held out too "
        "(never queued nor trained on), e.g. blue/copy_of_red_0.png, green/green_0.png"
    ]
    folder = tmp_path / "p"
    settings = {"config": {"data": {"image_size": 16, "cache_dir": str(tmp_path / "cache")}}}
    init_project(folder, images=tiles, classes=CLASSES, test_csv=tmp_path / "test.csv",
                 groups_csv=tmp_path / "groups.csv", settings=settings)  # fmt: skip
    held_out = {p for p, s in splits(folder).items() if s == "test"}
    assert held_out == {"red/red_0.png", "blue/copy_of_red_0.png", "green/green_0.png"}
    store = open_project(folder)
    assert store.counts()["images"] == 10 and store.counts()["test_images"] == 3

    from unisal.app.rounds import run_round

    record = run_round(folder)
    assert record["status"] == "done"
    queued = []
    while (item := store.lease_next("x", lease_seconds=60)) is not None:
        queued.append(item.path)
        store.skip(item.image_id, "x")
    assert len(queued) == 10 and not held_out & set(queued)


def test_the_cli_says_which_images_were_moved_to_the_hold_out(tiles: Path, tmp_path: Path):
    shutil.copy(tiles / "red" / "red_0.png", tiles / "blue" / "copy_of_red_0.png")
    (tmp_path / "test.csv").write_text("path,label\nred/red_0.png,red\n")
    result = CliRunner().invoke(
        cli,
        ["project", "init", str(tmp_path / "p"), "--images", str(tiles), "--classes", "red,green,blue",
         "--test", str(tmp_path / "test.csv")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "1 image(s) share a group with a --test image and are held out too "
        "(never queued nor trained on), e.g. blue/copy_of_red_0.png" in result.output
    )
    assert "project " in result.output and "13 images (2 held out for testing)" in result.output


def test_groups_are_connected_through_identical_bytes(tiles: Path, tmp_path: Path):
    # A (g1) and B (g2) are byte-identical: all of g1 and all of g2 are one group.
    shutil.copy(tiles / "red" / "red_0.png", tiles / "blue" / "blue_0.png")
    (tmp_path / "groups.csv").write_text(
        "path,group\nred/red_0.png,g1\nred/red_1.png,g1\nblue/blue_0.png,g2\nblue/blue_1.png,g2\n"
    )
    store = init_project(tmp_path / "p", images=tiles, classes=CLASSES, groups_csv=tmp_path / "groups.csv")
    group = {r["path"]: r["grp"] for r in store.images()}
    members = {p for p, g in group.items() if g == group["red/red_0.png"]}
    assert members == {"red/red_0.png", "red/red_1.png", "blue/blue_0.png", "blue/blue_1.png"}
    assert len(set(group.values())) == 9  # 12 images, 4 of them in one group


def test_folder_format_takes_the_class_names_from_the_folders(tiles: Path, tmp_path: Path):
    result = CliRunner().invoke(
        cli, ["project", "init", str(tmp_path / "p"), "--images", str(tiles), "--format", "folder"]
    )
    assert result.exit_code == 0, result.output
    store = open_project(tmp_path / "p")
    assert store.class_names() == ["blue", "green", "red"]  # sorted folder names
    assert len(store.labels()) == 12 and "classes blue, green, red" in result.output
    result = CliRunner().invoke(cli, ["project", "init", str(tmp_path / "q"), "--images", str(tiles)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (
        "Error: --classes is needed with --format unlabelled (the images carry no class names), "
        'e.g. --classes "TUM,STR,NORM"' in result.output
    )
    assert not (tmp_path / "q").exists()


def test_unreadable_and_empty_images_are_one_error_listing_them(
    tiles: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (tiles / "red" / "red_1.png").write_bytes(b"")
    locked = tiles / "green" / "green_2.png"
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads a mode-0 file: refuse it as the OS would
        import unisal.app.files as project_module

        real = project_module.sha256_of

        def denied(path: str | Path) -> tuple[str, int]:
            if Path(path) == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)

        monkeypatch.setattr(project_module, "sha256_of", denied)
    try:
        with pytest.raises(ProjectError) as excinfo:
            init_project(tmp_path / "p", images=tiles, classes=CLASSES)
    finally:
        locked.chmod(0o644)
    assert str(excinfo.value) == (
        f"2 image(s) under {tiles} cannot be read, e.g. green/green_2.png (permission denied), "
        "red/red_1.png (empty file): fix or remove them, then run `unisal project init` again"
    )
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("option", ["labels_csv", "test_csv"])
def test_a_csv_that_is_not_utf8_is_a_one_line_error(tiles: Path, tmp_path: Path, option: str):
    (tmp_path / "l.csv").write_bytes("path,label\nred/red_0.png,r\xe9d\n".encode("latin-1"))
    with pytest.raises(InputFileError, match=r"is not UTF-8 text \(byte 0xe9 at offset 26\)"):
        init_project(tmp_path / "p", images=tiles, classes=CLASSES, **{option: tmp_path / "l.csv"})
    assert not (tmp_path / "p").exists()


def test_an_npz_data_set_makes_a_project_whose_changes_are_found(tmp_path: Path):
    import numpy as np

    from unisal.app.project import check_images

    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 255, (6, 8, 8, 3), dtype=np.uint8),
        "train_labels": np.array([0, 1, 0, 1, 0, 1]),
    }
    np.savez(tmp_path / "d.npz", **arrays)
    store = init_project(tmp_path / "p", images=tmp_path / "d.npz", classes=None, fmt="npz")
    assert [r["path"] for r in store.images()][:2] == ["d.npz::train/0", "d.npz::train/1"]
    assert len({r["sha256"] for r in store.images()}) == 6 and len(store.labels()) == 6
    check_images(store)  # unchanged
    arrays["train_images"][4] ^= 1
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(
        ProjectError, match=r"^1 image\(s\) changed since `project init` .*e\.g\. d\.npz::train/4:"
    ):
        check_images(store)


def test_an_init_that_fails_while_writing_leaves_no_project_db(
    tiles: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from unisal.app.store import ProjectStore

    def broken(self: ProjectStore, rows: object, annotator: str) -> int:
        raise MemoryError("simulated: killed while writing")

    monkeypatch.setattr(ProjectStore, "import_labels", broken)
    with pytest.raises(MemoryError):
        init_project(tmp_path / "p", images=tiles, classes=None, fmt="folder")
    assert list((tmp_path / "p").iterdir()) == []  # no half-made project.db to open later
    monkeypatch.undo()
    assert len(init_project(tmp_path / "p", images=tiles, classes=None, fmt="folder").labels()) == 12
