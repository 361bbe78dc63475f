"""One definition of "labelled": labels of pool images train; held-out labels are counted apart,
the same in `project status`, counts(), a round's n_labels and its metrics."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from click.testing import CliRunner

from unisal.app.project import init_project, open_project
from unisal.app.rounds import ProjectSettings, run_round
from unisal.cli.main import cli

CLASSES = ["red", "green", "blue"]


def test_status_counts_and_rounds_agree_on_the_labels(make_image_folder, tmp_path: Path):
    tiles = make_image_folder(classes={"red": 4, "green": 4, "blue": 4}, size=16)
    (tmp_path / "test.csv").write_text("path,label\nred/red_0.png,red\ngreen/green_0.png,green\n")
    (tmp_path / "labels.csv").write_text(
        "path,label\nred/red_1.png,red\nblue/blue_1.png,blue\nblue/blue_2.png,blue\n"
    )
    folder = tmp_path / "p"
    config = {"data": {"image_size": 16, "cache_dir": str(tmp_path / "cache")}}
    init_project(folder, images=tiles, classes=CLASSES, labels_csv=tmp_path / "labels.csv",
                 test_csv=tmp_path / "test.csv", settings=asdict(ProjectSettings(budget=2, config=config)))  # fmt: skip
    counts = open_project(folder).counts()
    assert {k: counts[k] for k in ("images", "labelled", "test_images", "test_labelled")} == {
        "images": 10,
        "labelled": 3,
        "test_images": 2,
        "test_labelled": 2,
    }
    assert counts["per_class"] == {"red": 1, "green": 0, "blue": 2}
    assert counts["test_per_class"] == {"red": 1, "green": 1, "blue": 0}
    record = run_round(folder)  # cold start: too few labels for a model
    assert record["n_labels"] == record["metrics"]["n_labels"] == 3
    assert record["metrics"]["n_test_labels"] == 2
    result = CliRunner().invoke(cli, ["project", "status", str(folder)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        "10 images, 3 labelled (+2 held out of 2 held-out images), 2 queued, 0 disagreements to review"
    )
    assert "round 1: done, 3 labels" in result.output
