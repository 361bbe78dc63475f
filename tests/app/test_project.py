"""Project init, export and import: CSV and Label Studio JSON round trips, and refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from unisal.app.project import (
    export_labels,
    import_labels,
    init_project,
    label_studio_config,
    open_project,
    read_label_studio,
)
from unisal.app.store import ProjectError

CLASSES = ["red", "green", "blue"]


@pytest.fixture
def tiles(make_image_folder) -> Path:
    root = make_image_folder(classes={"red": 4, "green": 4, "blue": 4}, size=16)
    shutil.copy(root / "red" / "red_0.png", root / "blue" / "copy_of_red_0.png")  # byte-identical
    return root


def test_init_reads_every_image_and_groups_identical_ones(tiles: Path, tmp_path: Path):
    store = init_project(tmp_path / "p", images=tiles, classes=CLASSES)
    rows = {r["path"]: r for r in store.images()}
    assert len(rows) == 13 and "red/red_0.png" in rows
    assert rows["red/red_0.png"]["grp"] == rows["blue/copy_of_red_0.png"]["grp"]
    assert rows["red/red_0.png"]["sha256"] == rows["blue/copy_of_red_0.png"]["sha256"]
    assert len({r["grp"] for r in rows.values()}) == 12
    assert store.labels() == {} and store.settings()["image_root"] == str(tiles)
    assert open_project(tmp_path / "p").counts()["images"] == 13


def test_init_seeds_labels_from_the_layout_a_csv_and_a_held_out_test_set(tiles: Path, tmp_path: Path):
    (tmp_path / "labels.csv").write_text("path,label\nblue/copy_of_red_0.png,red\n")
    (tmp_path / "test.csv").write_text("path,label\nred/red_3.png,red\ngreen/green_3.png,green\n")
    store = init_project(
        tmp_path / "p", images=tiles, classes=CLASSES, fmt="folder",
        labels_csv=tmp_path / "labels.csv", test_csv=tmp_path / "test.csv",
    )  # fmt: skip
    labels = store.labels()
    assert len(labels) == 13 and labels["blue/copy_of_red_0.png"][0] == "red"  # the CSV overrides
    assert all(annotator == "import" for _, annotator, _ in labels.values())
    assert store.counts()["test_images"] == 2


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("path,label\nred/red_0.png,purple\n", "class(es) ['purple'] not among --classes"),
        ("path,label\nred/nope.png,red\n", "1 image(s) not under"),
    ],
)
def test_init_refuses_bad_labels_before_writing(tiles: Path, tmp_path: Path, labels: str, message: str):
    (tmp_path / "labels.csv").write_text(labels)
    with pytest.raises(
        ProjectError,
        match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]"),
    ):
        init_project(tmp_path / "p", images=tiles, classes=CLASSES, labels_csv=tmp_path / "labels.csv")
    assert not (tmp_path / "p").exists()


def test_init_refuses_a_used_folder(tiles: Path, tmp_path: Path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    with pytest.raises(ProjectError, match="not an empty folder"):
        init_project(tmp_path / "used", images=tiles, classes=CLASSES)
    with pytest.raises(ProjectError, match="two or more distinct"):
        init_project(tmp_path / "p", images=tiles, classes=["red"])


def test_label_studio_round_trip_gives_identical_labels(tiles: Path, tmp_path: Path):
    store = init_project(tmp_path / "a", images=tiles, classes=CLASSES)
    ids = {r["path"]: r["id"] for r in store.images()}
    for path, label in (
        ("red/red_1.png", "red"),
        ("green/green_2.png", "green"),
        ("blue/blue_0.png", "blue"),
    ):
        store.set_label(ids[path], label, "alice")
    assert export_labels(store, tmp_path / "ls.json", "labelstudio") == 3
    tasks = json.loads((tmp_path / "ls.json").read_text())
    assert tasks[0]["data"]["image"].startswith("/data/local-files/?d=")
    assert tasks[0]["annotations"][0]["result"][0]["value"]["choices"] in (["red"], ["green"], ["blue"])
    fresh = init_project(tmp_path / "b", images=tiles, classes=CLASSES)
    assert import_labels(fresh, tmp_path / "ls.json") == 3
    assert {p: v[0] for p, v in fresh.labels().items()} == {p: v[0] for p, v in store.labels().items()}
    export_labels(store, tmp_path / "labels.csv", "csv")
    other = init_project(tmp_path / "c", images=tiles, classes=CLASSES)
    assert import_labels(other, tmp_path / "labels.csv") == 3
    assert {p: v[0] for p, v in other.labels().items()} == {p: v[0] for p, v in store.labels().items()}
    assert '<Choice value="green"/>' in label_studio_config(CLASSES)


def test_label_studio_exports_from_elsewhere_match_by_unique_file_name():
    known = {"red/red_1.png", "green/green_2.png", "a/same.png", "b/same.png"}
    tasks = [
        {
            "data": {"image": "/data/upload/3/8f2c1a9e-red_1.png"},
            "annotations": [{"result": [{"type": "choices", "value": {"choices": ["red"]}}]}],
        },
        {
            "data": {"image": "/data/local-files/?d=green%2Fgreen_2.png"},
            "annotations": [{"result": [{"type": "choices", "value": {"choices": ["green"]}}]}],
        },
        {
            "data": {"image": "/data/upload/3/same.png"},
            "annotations": [{"result": [{"type": "choices", "value": {"choices": ["blue"]}}]}],
        },
        {"data": {"image": "x.png"}, "annotations": []},  # not annotated: skipped
        {
            "data": {"image": "y.png"},
            "annotations": [
                {"was_cancelled": True, "result": [{"type": "choices", "value": {"choices": ["red"]}}]}
            ],
        },
    ]
    rows = read_label_studio(json.dumps(tasks), known)
    assert rows == [
        ("red/red_1.png", "red"),
        ("green/green_2.png", "green"),
        ("/data/upload/3/same.png", "blue"),
    ]


def test_an_import_with_an_unknown_class_or_image_imports_nothing(tiles: Path, tmp_path: Path):
    store = init_project(tmp_path / "p", images=tiles, classes=CLASSES)
    (tmp_path / "bad.csv").write_text(
        "path,label\nred/red_0.png,red\nred/red_1.png,TUMOUR\nmissing.png,red\n"
    )
    with pytest.raises(ProjectError, match="nothing imported: 1 unknown image.*'TUMOUR'"):
        import_labels(store, tmp_path / "bad.csv")
    assert store.labels() == {}
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ProjectError, match="not a Label Studio JSON export"):
        import_labels(store, tmp_path / "bad.json")
    with pytest.raises(ProjectError, match="no unisal project"):
        open_project(tmp_path)


def test_the_project_commands(tiles: Path, tmp_path: Path):
    from click.testing import CliRunner

    from unisal.cli.main import cli

    runner = CliRunner()
    folder = str(tmp_path / "p")
    result = runner.invoke(
        cli, ["project", "init", folder, "--images", str(tiles), "--classes", "red,green,blue"]
    )
    assert result.exit_code == 0, result.output
    assert "13 images (0 held out for testing), 0 labelled" in result.output
    (tmp_path / "l.csv").write_text("path,label\nred/red_0.png,red\ngreen/green_0.png,green\n")
    result = runner.invoke(
        cli, ["project", "import", folder, str(tmp_path / "l.csv"), "--annotator", "alice"]
    )
    assert result.exit_code == 0 and "2 labels imported" in result.output
    result = runner.invoke(cli, ["project", "status", folder])
    assert "13 images, 2 labelled, 0 queued" in result.output and "  green  1" in result.output
    result = runner.invoke(
        cli, ["project", "export", folder, "--format", "labelstudio", "--out", str(tmp_path / "x.json")]
    )
    assert result.exit_code == 0 and "2 labels written" in result.output
    (tmp_path / "bad.csv").write_text("path,label\nred/red_1.png,purple\n")
    result = runner.invoke(cli, ["project", "import", folder, str(tmp_path / "bad.csv")])
    assert result.exit_code != 0 and "nothing imported" in result.output and "Traceback" not in result.output
    result = runner.invoke(cli, ["project", "init", folder, "--images", str(tiles), "--classes", "a,b"])
    assert result.exit_code != 0 and "not an empty folder" in result.output
    result = runner.invoke(cli, ["project", "status", str(tmp_path)])
    assert result.exit_code != 0 and "holds no unisal project" in result.output
