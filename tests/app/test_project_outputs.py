"""Output files of `predict`, `export-model` and `project export` are checked before the work:
a missing or read-only folder, or a folder given as the file, is a one-line error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from unisal.app.export import export_model, predict_folder
from unisal.app.project import export_labels, init_project, open_project
from unisal.cli.main import cli
from unisal.errors import RunError


@pytest.fixture
def project(make_image_folder, tmp_path: Path) -> tuple[Path, Path]:
    tiles = make_image_folder(classes={"red": 2, "green": 2}, size=16)
    folder = tmp_path / "p"
    store = init_project(folder, images=tiles, classes=["red", "green"])
    store.set_label(1, "red", "alice")
    return folder, tiles


def test_an_output_in_a_missing_folder_is_refused_before_the_work(project: tuple[Path, Path], tmp_path: Path):
    folder, tiles = project
    out = tmp_path / "missing" / "out.csv"
    expected = f"--out {out}: the folder {out.parent} does not exist; create it first"
    for call in (
        lambda: predict_folder(folder, tiles, out),  # before "no trained round yet"
        lambda: export_model(folder, out),
        lambda: export_labels(open_project(folder), out, "csv"),
    ):
        with pytest.raises(RunError) as excinfo:
            call()
        assert str(excinfo.value) == expected
    runner = CliRunner()
    for args in (
        ["predict", "--project", str(folder), "--images", str(tiles), "--out", str(out)],
        ["export-model", "--project", str(folder), "--out", str(out)],
        ["project", "export", str(folder), "--out", str(out)],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 1 and result.output == f"Error: {expected}\n", result.output
    assert not out.parent.exists()


def test_an_output_that_is_a_folder_is_refused(project: tuple[Path, Path], tmp_path: Path):
    folder, tiles = project
    with pytest.raises(RunError) as excinfo:
        predict_folder(folder, tiles, tmp_path)
    assert str(excinfo.value) == f"--out {tmp_path} is a folder; name a file"


def test_an_output_in_a_read_only_folder_is_refused(project: tuple[Path, Path], tmp_path: Path):
    folder, _ = project
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: a read-only folder is still writable")
        with pytest.raises(RunError) as excinfo:
            export_model(folder, locked / "model.pt2")
        assert str(excinfo.value) == f"--out {locked / 'model.pt2'}: the folder {locked} is not writable"
    finally:
        locked.chmod(0o700)
