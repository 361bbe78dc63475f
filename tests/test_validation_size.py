"""Issue 8, item 15: --val-size sets the validation labels; rounds.csv reports them as n_val."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from unisal.cli.main import cli
from unisal.config import DataConfig
from unisal.data.catalogue import DataError
from unisal.data.prepare import prepare_data


def test_val_size_sets_the_validation_split(make_image_folder, tmp_path: Path):
    root = make_image_folder(classes={"A": 30, "B": 30})
    for size in (0, 6, 12):
        data = prepare_data(
            DataConfig(path=str(root), image_size=16, cache_dir=str(tmp_path / "c"), val_size=size), 0, False
        )
        assert len(data.idx_val) == size  # one image per group: exactly the size asked for
    with pytest.raises(DataError, match="--val-size 50 and test_fraction 0.2 leave too little"):
        prepare_data(
            DataConfig(path=str(root), image_size=16, cache_dir=str(tmp_path / "c"), val_size=50), 0, False
        )


def test_rounds_csv_reports_the_validation_labels(make_image_folder, tmp_path: Path):
    root = make_image_folder(classes={"A": 12, "B": 12, "C": 12}, size=32)
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "simulate", "--data", str(root), "--cache-dir", str(tmp_path / "c"), "--image-size", "32", "--epochs", "1",
        "--steps-per-epoch", "2", "--batch-size", "8", "--initial", "6", "--budget", "3", "--rounds", "1",
        "--val-size", "0", "--quiet", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    with (out / "rounds.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["n_val"] for r in rows] == ["0", "0"] and [r["val_accuracy"] for r in rows] == ["", ""]
