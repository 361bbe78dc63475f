"""Issue 8, item 15: --val-size sets the validation labels; rounds.csv reports them as n_val."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from unisal.cli.main import cli
from unisal.config import DataConfig, build_config
from unisal.data.catalogue import DataError
from unisal.data.prepare import prepare_data


def test_val_size_sets_the_validation_split(make_image_folder, tmp_path: Path):
    root = make_image_folder(classes={"A": 30, "B": 30})
    for size in (0, 6, 12):
        data = prepare_data(
            DataConfig(path=str(root), image_size=16, cache_dir=str(tmp_path / "c"), val_size=size), 0
        )
        assert len(data.idx_val) == size  # one image per group: exactly the size asked for
    with pytest.raises(DataError, match="--val-size 50 and test_fraction 0.2 leave too little"):
        prepare_data(DataConfig(path=str(root), image_size=16, cache_dir=str(tmp_path / "c"), val_size=50), 0)


@pytest.mark.parametrize("val_size", [None, 6])
def test_rounds_csv_reports_the_validation_labels(make_image_folder, tmp_path: Path, val_size: int | None):
    """n_val and n_labeled_total (= n_labeled + n_val) in rounds.csv; no --val-size: none."""
    root = make_image_folder(classes={"A": 12, "B": 12, "C": 12}, size=32)
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "simulate", "--data", str(root), "--cache-dir", str(tmp_path / "c"), "--image-size", "32", "--epochs", "1",
        "--steps-per-epoch", "2", "--batch-size", "8", "--initial", "6", "--budget", "3", "--rounds", "1",
        "--quiet", "--out", str(out), *(["--val-size", str(val_size)] if val_size else []),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    with (out / "rounds.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    n_val = val_size or 0
    assert [r["n_labeled"] for r in rows] == ["6", "9"] and [r["n_val"] for r in rows] == [str(n_val)] * 2
    assert [r["n_labeled_total"] for r in rows] == [str(6 + n_val), str(9 + n_val)]
    assert all((r["val_accuracy"] == "") == (n_val == 0) for r in rows)


def test_the_default_is_no_validation_and_the_paper_preset_keeps_its_ten_percent(
    make_image_folder, tmp_path: Path
):
    """Item 15's measurement chose no validation set (a fixed schedule) as the default; the paper
    preset reproduces the reference protocol, 10 % of all labelled images (reported as n_val)."""
    assert build_config("cpu").data.val_size == 0 and build_config("cpu-finetune").data.val_size == 0
    paper = build_config("paper").data
    assert paper.val_size is None and paper.val_fraction == 0.1
    root = make_image_folder(classes={"A": 30, "B": 30})
    cache = str(tmp_path / "c")
    assert len(prepare_data(DataConfig(path=str(root), image_size=16, cache_dir=cache), 0).idx_val) == 0
    share = prepare_data(DataConfig(path=str(root), image_size=16, cache_dir=cache, val_size=None), 0)
    assert len(share.idx_val) == 6  # 10 % of 60, one image per group
