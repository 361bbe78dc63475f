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
    run_round(folder)
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
    run_round(folder)
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


def _learner_on(tiles: Path, tmp_path: Path, learner_name: str, features: dict[str, object]):
    """An untrained learner (random heads are as good as trained ones for this comparison) on
    the tiles, its data, and its settings."""
    from unisal.data.prepare import prepare_data
    from unisal.learners import create_learner
    from unisal.settings import resolve_config

    values: dict[str, object] = {
        "data": {"path": str(tiles), "image_size": 32, "cache_dir": str(tmp_path / "cache")},
        "learner": {"name": learner_name},
        "features": features,
    }
    if learner_name == "finetune":
        values["model"] = {"backbone": "test_resnet", "pretrained": False}
    cfg = resolve_config("cpu", values)
    data = prepare_data(cfg.data, seed=0)
    learner = create_learner(cfg, len(data.catalogue.class_names), torch.device("cpu"))
    learner.prepare(data)
    learner.nets = learner.new_networks(seed=0)
    return learner, data, cfg


def _exported_and_predicted(learner, data, cfg) -> tuple[np.ndarray, np.ndarray]:
    """The exported module's probabilities on every cached image, and the learner's own."""
    from unisal.app.export import ExportedClassifier

    idx = np.arange(len(data.catalogue))
    expected = learner.predict(idx).probs().mean(axis=0)
    images = torch.from_numpy(np.array(data.store.get(idx))).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        got = ExportedClassifier(learner, cfg)(images).numpy()
    return got, expected


@pytest.mark.parametrize(
    "features",
    [
        {"views": views, "crops": crops, "predict_views": score}
        for views in ("identity", "rot4", "d8")
        for crops in (0, 2)
        for score in ("mean", "tta", "first")
        if not (views == "rot4" and crops == 2)  # every views and every crops setting, each score
    ],
    ids=lambda f: f"{f['views']}-crops{f['crops']}-{f['predict_views']}",
)
def test_the_exported_classifier_predicts_what_the_learner_predicts(
    make_image_folder, tmp_path: Path, features: dict[str, object]
) -> None:
    """For every --views / --crops / --predict-views, the module that export-model traces gives the
    learner's probabilities on the cached images (the cached features are float16 on both sides)."""
    tiles = make_image_folder(classes={"red": 4, "green": 4, "blue": 4}, size=32)
    learner, data, cfg = _learner_on(tiles, tmp_path, "frozen", features)
    got, expected = _exported_and_predicted(learner, data, cfg)
    # agreement is ~1e-7 here (1e-3 leaves room for another CPU's float16 rounding of the cached
    # features); a wrong combination of the views (mean for tta, or crops left out) is off by 1e-2
    np.testing.assert_allclose(got, expected, atol=1e-3)


def test_the_exported_classifier_of_a_fine_tuned_network_predicts_what_it_predicts(
    make_image_folder, tmp_path: Path
) -> None:
    tiles = make_image_folder(classes={"red": 4, "green": 4}, size=32)
    learner, data, cfg = _learner_on(tiles, tmp_path, "finetune", {})
    got, expected = _exported_and_predicted(learner, data, cfg)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_the_exported_classifier_takes_the_centre_square_as_the_cache_does(
    make_image_folder, tmp_path: Path
) -> None:
    """A non-square image: the cache keeps its centre square (unisal.data.images.resize_square),
    and so does the exported model; squashing the whole image would give other inputs."""
    from unisal.app.export import centre_square

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    square = centre_square(x, 48)
    np.testing.assert_allclose(square[0].permute(1, 2, 0).numpy(), image[:, 8:56] / 255, atol=1e-5)
    from unisal.data.images import resize_square

    cached = resize_square(image, 32) / 255
    exported = centre_square(x, 32)[0].permute(1, 2, 0).numpy()
    assert np.abs(exported - cached).mean() < 0.02  # two bicubic resamplers, one crop


def test_a_project_on_streamed_pixels_trains_and_predict_names_an_unreadable_image(
    make_image_folder, tmp_path: Path
) -> None:
    """Issue 18: a project's rounds and predictions with no decoded-image cache; an image that
    cannot be read gets no prediction (even where the project skips bad images in its rounds)."""
    tiles = make_image_folder(classes={"red": 8, "green": 8, "blue": 8}, size=32)
    (tmp_path / "labels.csv").write_text(
        "path,label\n" + "".join(f"{c}/{c}_{i}.png,{c}\n" for c in CLASSES for i in range(3))
    )
    config = {
        "data": {"image_size": 32, "cache_dir": str(tmp_path / "cache"), "pixel_cache": "stream",
                 "skip_bad_images": True},
        "learner": {"name": "frozen"},
        "train": {"epochs": 2, "steps_per_epoch": 3, "batch_size": 8, "eval_every": 1},
    }  # fmt: skip
    folder = tmp_path / "p"
    init_project(folder, images=tiles, classes=CLASSES, labels_csv=tmp_path / "labels.csv",
                 settings=asdict(ProjectSettings(budget=3, config=config)))  # fmt: skip
    run_round(folder)
    assert not list((tmp_path / "cache").glob("*.npy"))  # no decoded-image cache
    new = make_image_folder(classes={"red": 2, "blue": 2}, size=32, seed=5)
    (new / "blue" / "blue_1.png").write_bytes(b"not a png")
    result = CliRunner().invoke(
        cli, ["predict", "--project", str(folder), "--images", str(new), "--out", str(tmp_path / "p.csv")]
    )
    assert result.exit_code == 1 and "blue_1.png" in result.output and "cannot be read" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "p.csv").exists()
