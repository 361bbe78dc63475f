"""The learners through the command line on synthetic colour tiles: never skips (no real data needed)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from unisal.cli.main import cli

FAST = ["--image-size", "32", "--epochs", "2", "--steps-per-epoch", "3", "--batch-size", "8", "--quiet"]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def colours(make_image_folder) -> Path:
    return make_image_folder(classes={"red": 14, "green": 14, "blue": 14}, size=32)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(
    ("learner", "strategy"),
    # a strategy that asks the learner and one that does not; random with the fine-tune learner
    # adds nothing that these and the strategy contract (tests/query) do not cover
    [("frozen", "unisal"), ("finetune", "unisal"), ("frozen", "random")],
)
def test_simulate_with_each_learner_and_strategy(
    colours: Path, tmp_path: Path, learner: str, strategy: str
) -> None:
    out = tmp_path / "run"
    result = invoke(
        "simulate", "--data", str(colours), "--learner", learner, "--strategy", strategy,
        "--initial", "6", "--budget", "3", "--rounds", "2", "--out", str(out),
        "--cache-dir", str(tmp_path / "cache"), *FAST,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "done: 12 labels" in result.output
    assert [r["n_labeled"] for r in rows(out / "rounds.csv")] == ["6", "9", "12"]
    config = yaml.safe_load((out / "config.yaml").read_text())
    guard = "fallback"  # the cpu preset guards its co-trained heads, whichever learner
    assert config["learner"] == {"name": learner, "mode": "cotrain", "networks": 2, "guard": guard}
    checkpoint = out / "checkpoints" / "round_2.pt"
    import torch

    state = torch.load(checkpoint, weights_only=True)
    assert state["learner"] == learner and len(state["nets"]) == 2
    queried = [q for k in (1, 2) for q in rows(out / "queries" / f"round_{k}.csv")]
    assert len({q["path"] for q in queried}) == 6


def test_supervised_reference_with_one_and_two_networks(colours: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = invoke(
        "simulate", "--data", str(colours), "--initial", "6", "--budget", "3", "--rounds", "1",
        "--out", str(out), "--cache-dir", str(tmp_path / "cache"), *FAST,
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    for networks in ("1", "2"):
        ref = invoke(
            "supervised", "--run", str(out), "--networks", networks, "--out", str(tmp_path / networks),
            *FAST[2:],
        )  # fmt: skip
        assert ref.exit_code == 0, ref.output
        metrics = json.loads((tmp_path / networks / "metrics.json").read_text())
        assert metrics["networks"] == int(networks) and metrics["learner"] == "frozen"
        assert metrics["config"]["learner"]["mode"] == "supervised"
        assert metrics["n_labeled"] == 9
    default = invoke("supervised", "--run", str(out), "--out", str(tmp_path / "d"), *FAST[2:])
    assert default.exit_code == 0, default.output
    assert json.loads((tmp_path / "d" / "metrics.json").read_text())["networks"] == 2


def test_features_command_builds_then_reuses_the_cache(colours: Path, tmp_path: Path) -> None:
    args = ["features", "--data", str(colours), "--image-size", "32", "--views", "rot4", "--crops", "1",
            "--cache-dir", str(tmp_path / "cache"), "--quiet"]  # fmt: skip
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    assert "42 images x 5 views (rot4 + 1 crops" in first.output
    (folder,) = (tmp_path / "cache" / "features").iterdir()
    stamp = (folder / "complete.json").stat().st_mtime_ns
    again = invoke(*args)
    assert again.exit_code == 0 and (folder / "complete.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backbone", "resnet5"], "unknown backbone 'resnet5'; did you mean resnet50"),
        (["--strategy", "oracle"], "unknown strategy 'oracle'"),
        (["--learner", "lora"], "unknown learner 'lora'"),
        (["--mode", "supervised", "--networks", "1"], "strategy 'unisal' compares 2 networks"),
        (["--learner", "frozen", "--no-pretrained"], "frozen learner needs pretrained weights"),
        (["--device", "tpu"], "device 'tpu'"),
        (["--backbone", "h-optimus-0"], "takes 224 px images only"),
    ],
)
def test_bad_settings_fail_before_anything_is_written(
    colours: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    result = invoke(
        "simulate", "--data", str(colours), "--out", str(out), "--cache-dir", str(tmp_path / "c"), *args
    )
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists()
    assert not (tmp_path / "c").exists()  # refused before even decoding the images


def test_strategy_needs_are_checked_before_anything_is_written(colours: Path, tmp_path: Path) -> None:
    common = ["--data", str(colours), "--cache-dir", str(tmp_path / "cache"), *FAST]
    result = invoke(
        "simulate", *common, "--strategy", "bald", "--drop-rate", "0", "--out", str(tmp_path / "a")
    )
    assert result.exit_code != 0 and "uses MC dropout, but model.drop_rate is 0.0" in result.output
    result = invoke(
        "simulate",
        *common,
        "--strategy",
        "unisal",
        "--mode",
        "supervised",
        "--networks",
        "1",
        "--out",
        str(tmp_path / "b"),
    )
    assert result.exit_code != 0 and "compares 2 networks, but the learner trains 1" in result.output
    result = invoke(
        "simulate", *common, "--strategy", "bald", "--param", "mc_samples=0", "--out", str(tmp_path / "c")
    )
    assert result.exit_code != 0 and "'mc_samples' must be > 0" in result.output
    assert not any((tmp_path / name).exists() for name in "abc")
    result = invoke(
        "simulate", *common, "--strategy", "bald", "--param", "mc_samples=2", "--initial", "6", "--budget", "3",
        "--rounds", "1", "--out", str(tmp_path / "d"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((tmp_path / "d" / "config.yaml").read_text())["query"]["params"] == {
        "mc_samples": 2
    }
    queries = rows(tmp_path / "d" / "queries" / "round_1.csv")
    assert len(queries) == 3 and all(q["reason"].startswith("BALD mutual information") for q in queries)
    assert all(float(q["score"]) >= 0 for q in queries)
