"""``--labelled-sampling balanced`` reaches the training loop through flags and YAML alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from unisal.cli.main import cli
from unisal.train import fit as fit_module


@pytest.mark.parametrize("how", ["uniform", "balanced"])
def test_the_flag_is_recorded_and_used(
    make_image_folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    used: list[str] = []
    real = fit_module.labelled_sampler

    def spy(indices: np.ndarray, labels: np.ndarray, sampling: str, rng: np.random.Generator):
        used.append(sampling)
        return real(indices, labels, sampling, rng)

    monkeypatch.setattr(fit_module, "labelled_sampler", spy)
    root = make_image_folder(classes={"A": 10, "B": 4}, size=32)
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "simulate", "--data", str(root), "--cache-dir", str(tmp_path / "c"), "--image-size", "32", "--epochs", "1",
        "--steps-per-epoch", "2", "--batch-size", "8", "--initial", "4", "--budget", "2", "--rounds", "1",
        "--labelled-sampling", how, "--quiet", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["labelled_sampling"] == how
    assert used == [how] * 4  # round 0 and round 1, each the warm start's supervised fit and the co-training


def test_an_unknown_sampling_is_refused(make_image_folder, tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("train:\n  labelled_sampling: stratified\n")
    root = make_image_folder(classes={"A": 3, "B": 3})
    result = CliRunner().invoke(
        cli,
        ["simulate", "--data", str(root), "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "o")],
    )
    assert result.exit_code != 0 and result.output.strip() == (
        "Error: config key 'train.labelled_sampling' must be one of ['uniform', 'balanced'], not 'stratified'"
    )
