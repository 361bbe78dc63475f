"""Predict with a project's model, and export it (torch.export) as a file that predicts the same."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from unisal.app.project import init_project
from unisal.app.rounds import ProjectSettings, run_round
from unisal.cli.main import cli

CLASSES = ["red", "green", "blue"]


def make_project(make_image_folder, tmp_path: Path, learner: str = "frozen") -> tuple[Path, Path]:
    tiles = make_image_folder(classes={"red": 8, "green": 8, "blue": 8}, size=32)
    (tmp_path / "labels.csv").write_text(
        "path,label\n" + "".join(f"{c}/{c}_{i}.png,{c}\n" for c in CLASSES for i in range(3))
    )
    config = {
        "data": {"image_size": 32, "cache_dir": str(tmp_path / "cache")},
        "learner": {"name": learner},
        "train": {"epochs": 3, "steps_per_epoch": 4, "batch_size": 8, "eval_every": 1},
    }
    if learner == "finetune":  # a tiny network: the frozen test exports Lite0 already
        config["model"] = {"backbone": "test_resnet", "pretrained": False}
    folder = tmp_path / "p"
    init_project(folder, images=tiles, classes=CLASSES, labels_csv=tmp_path / "labels.csv",
                 settings=asdict(ProjectSettings(budget=3, config=config)))  # fmt: skip
    return folder, tiles


@pytest.fixture
def trained(make_image_folder, tmp_path: Path) -> tuple[Path, Path]:
    return make_project(make_image_folder, tmp_path)


def load_exported(path: Path) -> tuple[torch.nn.Module, dict]:
    extra = {"unisal.json": ""}
    model = torch.export.load(str(path), extra_files=extra).module()
    return model, json.loads(extra["unisal.json"])


def exported_and_predicted(
    model: torch.nn.Module, tiles: Path, rows: list[dict[str, str]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exported model's probabilities on the tiles of ``rows`` (predict's CSV), and predict's."""
    images = torch.stack([
        torch.from_numpy(np.array(Image.open(tiles / r["path"]).convert("RGB"))).permute(2, 0, 1).float() / 255
        for r in rows
    ])  # fmt: skip
    with torch.no_grad():
        probs = model(images)
    return probs, torch.tensor([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows])


def test_predict_and_export_agree(trained: tuple[Path, Path], tmp_path: Path):
    folder, tiles = trained
    runner = CliRunner()
    result = runner.invoke(
        cli, ["predict", "--project", str(folder), "--images", str(tiles), "--out", str(tmp_path / "p.csv")]
    )
    assert result.exit_code != 0 and "no trained round yet" in result.output
    run_round(folder, log=lambda _: None)
    result = runner.invoke(
        cli, ["predict", "--project", str(folder), "--images", str(tiles), "--out", str(tmp_path / "p.csv")]
    )
    assert result.exit_code == 0, result.output
    with (tmp_path / "p.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 24 and set(rows[0]) == {
        "path",
        "label",
        "confidence",
        "networks_agree",
        "p_red",
        "p_green",
        "p_blue",
    }
    correct = np.mean([r["label"] == r["path"].split("/")[0] for r in rows])
    assert correct >= 0.9  # the colours are trivially separable
    assert all(abs(sum(float(r[f"p_{c}"]) for c in CLASSES) - 1) < 1e-3 for r in rows)

    result = runner.invoke(
        cli, ["export-model", "--project", str(folder), "--out", str(tmp_path / "model.pt")]
    )
    assert result.exit_code == 0, result.output
    model, info = load_exported(tmp_path / "model.pt")
    assert info["class_names"] == CLASSES and info["image_size"] == 32
    probs, expected = exported_and_predicted(model, tiles, rows)
    assert probs.shape == (24, 3)
    assert (probs.argmax(1) == expected.argmax(1)).float().mean() >= 0.95
    assert (probs - expected).abs().max() < 0.05  # float16 cache and resizing aside, the same model
    # any batch size and image size: resized inside, as the rounds resize
    with torch.no_grad():
        other = model(torch.rand(3, 3, 40, 56))
    assert other.shape == (3, 3) and torch.allclose(other.sum(1), torch.ones(3), atol=1e-4)


def test_a_fine_tuned_model_exports_too(make_image_folder, tmp_path: Path):
    folder, tiles = make_project(make_image_folder, tmp_path, learner="finetune")
    run_round(folder, log=lambda _: None)
    runner = CliRunner()
    out = tmp_path / "model.pt2"
    result = runner.invoke(cli, ["export-model", "--project", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        cli, ["predict", "--project", str(folder), "--images", str(tiles), "--out", str(tmp_path / "p.csv")]
    )
    assert result.exit_code == 0, result.output
    with (tmp_path / "p.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    model, info = load_exported(out)
    assert info["learner"] == "finetune"
    probs, expected = exported_and_predicted(model, tiles, rows)
    assert (probs - expected).abs().max() < 0.05
