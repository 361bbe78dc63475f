"""Predict with a project's model, and export it as TorchScript that predicts the same."""

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


@pytest.fixture
def trained(make_image_folder, tmp_path: Path) -> tuple[Path, Path]:
    tiles = make_image_folder(classes={"red": 8, "green": 8, "blue": 8}, size=32)
    (tmp_path / "labels.csv").write_text(
        "path,label\n" + "".join(f"{c}/{c}_{i}.png,{c}\n" for c in CLASSES for i in range(3))
    )
    config = {
        "data": {"image_size": 32, "cache_dir": str(tmp_path / "cache")},
        "train": {"epochs": 3, "steps_per_epoch": 4, "batch_size": 8, "eval_every": 1},
    }
    folder = tmp_path / "p"
    init_project(folder, images=tiles, classes=CLASSES, labels_csv=tmp_path / "labels.csv",
                 settings=asdict(ProjectSettings(budget=3, config=config)))  # fmt: skip
    return folder, tiles


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
    extra = {"unisal.json": ""}
    model = torch.jit.load(str(tmp_path / "model.pt"), _extra_files=extra)
    info = json.loads(extra["unisal.json"])
    assert info["class_names"] == CLASSES and info["image_size"] == 32
    images = torch.stack([
        torch.from_numpy(np.array(Image.open(tiles / r["path"]).convert("RGB"))).permute(2, 0, 1).float() / 255
        for r in rows
    ])  # fmt: skip
    with torch.no_grad():
        probs = model(images)
    expected = torch.tensor([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows])
    assert probs.shape == (24, 3)
    assert (probs.argmax(1) == expected.argmax(1)).float().mean() >= 0.95
    assert (probs - expected).abs().max() < 0.05  # float16 cache and resizing aside, the same model
