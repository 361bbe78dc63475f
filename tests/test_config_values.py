"""Every config value is type- and range-checked, from YAML and from flags alike (issue 8, item 9):
a one-line error naming the key and what is allowed, before anything is read or written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from unisal.cli.main import cli
from unisal.config import ConfigError, build_config

BAD_YAML = [
    ({"rounds": 1.5}, "config key 'rounds' must be a whole number >= 0, not 1.5"),
    (
        {"data": {"skip_bad_images": "no"}},
        "config key 'data.skip_bad_images' must be true or false, not 'no'",
    ),
    ({"query": {"budget": 2.5}}, "config key 'query.budget' must be a whole number >= 1, not 2.5"),
    ({"train": {"steps_per_epoch": -2}}, "config key 'train.steps_per_epoch' must be >= 1 (or null), not -2"),
    ({"train": {"epochs": "three"}}, "config key 'train.epochs' must be a whole number >= 1, not 'three'"),
    ({"train": {"tau": None}}, "config key 'train.tau' must be set (got null); allowed: in (0, 1)"),
    ({"query": {"kmeans_n_init": 0}}, "config key 'query.kmeans_n_init' must be >= 1, not 0"),
    ({"train": {"eval_every": 0}}, "config key 'train.eval_every' must be >= 1, not 0"),
    (
        {"features": {"views": "d9"}},
        "config key 'features.views' must be one of ['identity', 'rot4', 'd8'], not 'd9'",
    ),
    (
        {"train": {"optimizer": "adam"}},
        "config key 'train.optimizer' must be one of ['sgd', 'adamw'], not 'adam' (did you mean 'adamw'?)",
    ),
    (
        {"data": {"image_size": True}},
        "config key 'data.image_size' must be a whole number in [16, 4096], not True",
    ),
    ({"model": {"drop_rate": 1.0}}, "config key 'model.drop_rate' must be in [0, 1), not 1.0"),
    ({"query": {"params": [1, 2]}}, "config key 'query.params' must be a mapping, not [1, 2]"),
]
BAD_FLAGS = [
    (["--seed", "-1"], "config key 'seed' must be in [0, 4294967296), not -1"),
    (["--lr", "-0.1"], "config key 'train.lr' must be in (0, 10], not -0.1"),
    (["--lr", "nan"], "config key 'train.lr' must be a finite number in (0, 10], not nan"),
    (["--pool-subset", "-5"], "config key 'query.pool_subset' must be >= 1 (or null), not -5"),
    (["--budget", "0"], "config key 'query.budget' must be >= 1, not 0"),
    (["--drop-rate", "inf"], "config key 'model.drop_rate' must be a finite number in [0, 1), not inf"),
]


@pytest.mark.parametrize(("values", "message"), BAD_YAML)
def test_yaml_values_are_checked(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build_config("cpu", values)
    assert str(excinfo.value) == message


@pytest.mark.parametrize(("values", "message"), BAD_YAML[:4])
def test_the_cli_refuses_a_bad_yaml_value_in_one_line(
    make_image_folder, tmp_path: Path, values, message
) -> None:
    root = make_image_folder(classes={"a": 3, "b": 3})
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(values))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["simulate", "--data", str(root), "--config", str(tmp_path / "bad.yaml"), "--out", str(out)]
    )
    assert result.exit_code != 0 and result.output.strip() == f"Error: {message}"
    assert not out.exists()


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS)
def test_flags_are_checked_like_yaml(
    make_image_folder, tmp_path: Path, flags: list[str], message: str
) -> None:
    root = make_image_folder(classes={"a": 3, "b": 3})
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["simulate", "--data", str(root), *flags, "--out", str(out)])
    assert result.exit_code != 0 and result.output.strip() == f"Error: {message}"
    assert "Traceback" not in result.output and not out.exists()


def test_good_values_pass_and_ints_become_floats() -> None:
    cfg = build_config("cpu", {"train": {"lr": 1, "steps_per_epoch": None}, "query": {"pool_subset": None}})
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float) and cfg.train.steps_per_epoch is None
