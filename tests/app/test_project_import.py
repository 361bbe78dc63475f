"""Importing labels: malformed Label Studio JSON is a one-line error naming the task, a choice
must be a class name, paths outside the image root never match by file name, CSVs are UTF-8."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from unisal.app.project import import_labels, init_project, read_label_studio
from unisal.app.store import ProjectError
from unisal.cli.main import cli
from unisal.errors import InputFileError

KNOWN = {"red/red_1.png", "green/green_2.png", "a/same.png", "b/same.png"}
ROOT = "/data/tiles"


def task(image: object, *choices: object) -> dict[str, object]:
    result = [{"type": "choices", "value": {"choices": list(choices)}}]
    return {"data": {"image": image}, "annotations": [{"result": result}]}


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ([1, 2], "not a Label Studio JSON export: task at index 0 is a number, expected an object"),
        (["x"], "not a Label Studio JSON export: task at index 0 is a string, expected an object"),
        ({"data": {}}, "not a Label Studio JSON export: expected a list of tasks, got an object"),
        (
            [task("red_1.png", "red"), {"data": "red_1.png", "annotations": []}],
            "not a Label Studio JSON export: task at index 1: 'data' is a string, expected an object",
        ),
        (
            [{"data": {"image": "red_1.png"}, "annotations": {"result": []}}],
            "not a Label Studio JSON export: task at index 0: 'annotations' is an object, expected a list",
        ),
        (
            [{"data": {"image": "red_1.png"}, "annotations": ["red"]}],
            "not a Label Studio JSON export: task at index 0: 'annotations[0]' is a string, expected an object",
        ),
        (
            [{"data": {"image": "red_1.png"}, "annotations": [{"result": [7]}]}],
            "not a Label Studio JSON export: task at index 0: 'annotations[0].result[0]' is a number, "
            "expected an object",
        ),
        (
            [
                {
                    "data": {"image": "red_1.png"},
                    "annotations": [{"result": [{"type": "choices", "value": "red"}]}],
                }
            ],
            "not a Label Studio JSON export: task at index 0: 'annotations[0].result[0].value' is a string, "
            "expected an object",
        ),
        (
            [task("red_1.png", "red"), task("green_2.png", None)],
            "task at index 1: the choice null is not a class name (expected a string)",
        ),
        ([task("red_1.png", 3)], "task at index 0: the choice 3 is not a class name (expected a string)"),
        (
            [task({"url": "red_1.png"}, "red")],
            "not a Label Studio JSON export: task at index 0: 'data.image' is an object, expected a string",
        ),
    ],
)
def test_malformed_label_studio_json_is_a_one_line_error_naming_the_task(tasks: object, message: str):
    with pytest.raises(ProjectError) as excinfo:
        read_label_studio(json.dumps(tasks), KNOWN, root=ROOT)
    assert str(excinfo.value) == message


def test_deeply_nested_json_is_an_error_not_a_recursion_traceback():
    with pytest.raises(ProjectError) as excinfo:
        read_label_studio("[" * 50_000 + "]" * 50_000, KNOWN, root=ROOT)
    assert str(excinfo.value) == "not a Label Studio JSON export: nested too deeply to read"


def test_paths_outside_the_image_root_never_match_by_file_name():
    tasks = [
        task("/elsewhere/red_1.png", "red"),  # absolute, outside the root: unknown
        task("/data/tiles/red/red_1.png", "red"),  # absolute, under the root: that image
        task("/data/local-files/?d=other%2Fgreen_2.png", "green"),  # local files elsewhere: unknown
        task("/data/local-files/?d=/data/tiles/green/green_2.png", "green"),  # absolute under the root
        task("/data/upload/3/8f2c1a9e-red_1.png", "red"),  # an upload: its file name (hash prefix off)
        task("http://ls.example:8080/data/upload/3/8f2c1a9e-green_2.png", "green"),
        task("green_2.png", "green"),  # a bare file name
        task("somewhere/red_1.png", "red"),  # a relative path that is not the project's: unknown
    ]
    rows = read_label_studio(json.dumps(tasks), KNOWN, root=ROOT)
    assert [p for p, _ in rows] == [
        "/elsewhere/red_1.png",
        "red/red_1.png",
        "other/green_2.png",
        "green/green_2.png",
        "red/red_1.png",
        "green/green_2.png",
        "green/green_2.png",
        "somewhere/red_1.png",
    ]


def test_an_outside_path_makes_the_import_import_nothing(make_image_folder, tmp_path: Path):
    tiles = make_image_folder(classes={"red": 2, "green": 2}, size=16)
    store = init_project(tmp_path / "p", images=tiles, classes=["red", "green"])
    (tmp_path / "ls.json").write_text(
        json.dumps([task(str(tiles / "red" / "red_0.png"), "red"), task("/mnt/other/green_1.png", "green")])
    )
    with pytest.raises(ProjectError) as excinfo:
        import_labels(store, tmp_path / "ls.json")
    assert str(excinfo.value) == "nothing imported: 1 unknown image(s), e.g. /mnt/other/green_1.png"
    assert store.labels() == {}


def test_files_that_are_not_utf8_are_one_line_errors(make_image_folder, tmp_path: Path):
    tiles = make_image_folder(classes={"red": 2, "green": 2}, size=16)
    folder = tmp_path / "p"
    store = init_project(folder, images=tiles, classes=["red", "green"])
    (tmp_path / "l.csv").write_bytes("path,label\nred/red_0.png,r\xe9d\n".encode("latin-1"))
    with pytest.raises(InputFileError, match=r"l.csv is not UTF-8 text \(byte 0xe9 at offset 26\)"):
        import_labels(store, tmp_path / "l.csv")
    (tmp_path / "l.json").write_bytes('[{"data": {"image": "r\xe9d.png"}}]'.encode("latin-1"))
    with pytest.raises(InputFileError, match=r"l.json is not UTF-8 text \(byte 0xe9 at offset 22\)"):
        import_labels(store, tmp_path / "l.json")
    result = CliRunner().invoke(cli, ["project", "import", str(folder), str(tmp_path / "l.csv")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: ") and "is not UTF-8 text" in result.output
    assert store.labels() == {}
