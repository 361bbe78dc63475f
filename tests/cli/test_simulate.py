"""`unisal simulate` and `unisal supervised` through the command line (click's CliRunner)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from unisal.cli.main import cli

FAST = ["--image-size", "32", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8", "--quiet"]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def kather_copy(crc_samples: Path, tmp_path: Path) -> Path:
    """A writable copy of the 24 real Kather 2016 tiles (8 class folders)."""
    target = tmp_path / "kather2016"
    shutil.copytree(crc_samples / "kather2016", target)
    return target


def test_help_is_instant_and_lists_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert "simulate" in result.output and "supervised" in result.output
    result = invoke("simulate", "--help")
    assert "--resume" in result.output and "--pretrained / --no-pretrained" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no data given"),
        (["--data", "/nonexistent/folder"], "data path not found"),
        (["--strategy", "oracle"], "unknown strategy 'oracle'"),
        (["--budget", "500"], "training pool holds only"),
        (
            ["--preset", "cpu", "--image-size", "4"],
            "config key 'data.image_size' must be in [16, 4096], not 4",
        ),
    ],
)
def test_bad_input_is_a_clear_error(kather_copy: Path, tmp_path: Path, args: list[str], message: str) -> None:
    data = [] if args == [] or "--data" in args else ["--data", str(kather_copy)]
    result = CliRunner().invoke(
        cli, ["simulate", *data, *args, "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")]
    )
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_empty_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(
        cli, ["simulate", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code != 0
    assert "no images found" in result.output and "empty" in result.output


def test_corrupt_image_stops_the_run_and_names_the_file(kather_copy: Path, tmp_path: Path) -> None:
    bad = kather_copy / "01_TUMOR" / "broken.tif"
    bad.write_bytes(b"II*\x00 this is not a tiff")
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--data",
            str(kather_copy),
            "--out",
            str(tmp_path / "o"),
            "--cache-dir",
            str(tmp_path / "c"),
        ],
    )
    assert result.exit_code != 0
    assert str(bad) in result.output and "--skip-bad-images" in result.output


def test_skip_bad_images_runs_two_rounds_and_lists_them(kather_copy: Path, tmp_path: Path) -> None:
    """End to end on real Kather 2016 tiles: YAML config, flags overriding it, a skipped bad file."""
    bad = kather_copy / "05_DEBRIS" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"initial": 5, "rounds": 2, "query": {"budget": 3}, "seed": 3}))
    out = tmp_path / "out"
    result = invoke(
        "simulate", "--config", str(config), "--data", str(kather_copy), "--skip-bad-images",
        "--budget", "2", "--out", str(out), "--cache-dir", str(tmp_path / "c"), *FAST,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "done: 9 labels" in result.output
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["query"]["budget"] == 2  # flag beats file
    assert resolved["seed"] == 3 and resolved["initial"] == 5  # file beats preset
    with (out / "bad_images.csv").open() as handle:
        assert [row["path"] for row in csv.DictReader(handle)] == [str(bad)]
    with (out / "splits.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 24  # the bad file is left out
    with (out / "rounds.csv").open() as handle:
        assert [row["n_labeled"] for row in csv.DictReader(handle)] == ["5", "7", "9"]

    ref = invoke(
        "supervised", "--run", str(out), "--labels", "run", "--out", str(tmp_path / "ref"), *FAST[2:]
    )
    assert ref.exit_code == 0, ref.output
    metrics = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    assert metrics["n_labeled"] == 9 and metrics["round"] == 2
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert sum(map(sum, metrics["confusion"])) == sum(
        1 for _ in csv.DictReader((out / "splits.csv").open()) if _["split"] == "test"
    )
    everything = invoke("supervised", "--run", str(out), "--labels", "all", "--round", "0",
                        "--out", str(tmp_path / "all"), *FAST[2:])  # fmt: skip
    assert everything.exit_code == 0, everything.output
    assert json.loads((tmp_path / "all" / "metrics.json").read_text())["n_labeled"] > 9


def test_prefix_layout_random_strategy(crc_samples: Path, tmp_path: Path) -> None:
    """CRC-VAL-HE-7K layout (class as file-name prefix), random sampling, fine-tuning from scratch."""
    out = tmp_path / "out"
    result = invoke(
        "simulate", "--data", str(crc_samples / "crc-val-he-7k"), "--strategy", "random", "--no-pretrained",
        "--preset", "cpu-finetune",
        "--backbone", "test_resnet", "--initial", "8", "--budget", "4", "--rounds", "1",
        "--out", str(out), "--cache-dir", str(tmp_path / "c"), *FAST,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with (out / "queries" / "round_1.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and all(r["reason"] == "random" for r in rows)
    assert all(Path(r["path"]).name.startswith(r["label"] + "-") for r in rows)


def test_supervised_needs_a_run_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["supervised", "--run", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "not a unisal run folder" in result.output
