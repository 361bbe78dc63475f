"""Presets, YAML and flag overrides, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from unisal.cli.options import overrides_from_flags
from unisal.config import PRESETS, ConfigError, build_config, from_dict, load_yaml, to_dict


def test_cpu_preset_is_the_frozen_learner() -> None:
    cfg = build_config("cpu")
    assert (cfg.learner.name, cfg.learner.mode, cfg.learner.networks) == ("frozen", "cotrain", 2)
    assert (cfg.model.backbone, cfg.model.pretrained, cfg.data.image_size) == (
        "tf_efficientnet_lite0",
        True,
        112,
    )
    assert (cfg.features.views, cfg.features.predict_views, cfg.train.optimizer) == ("d8", "mean", "adamw")
    assert (cfg.initial, cfg.query.budget, cfg.rounds) == (30, 30, 5)
    assert (cfg.train.tau, cfg.train.temperature, cfg.train.lambda_con, cfg.train.lambda_pl) == (
        0.7,
        0.15,
        0.1,
        0.5,
    )


def test_cpu_finetune_preset_is_the_earlier_default() -> None:
    cfg = build_config("cpu-finetune")
    assert cfg.learner.name == "finetune"
    assert (cfg.model.backbone, cfg.model.pretrained, cfg.data.image_size) == (
        "tf_efficientnet_lite0",
        True,
        64,
    )
    assert (cfg.initial, cfg.query.budget, cfg.rounds) == (30, 30, 5)
    assert (cfg.train.tau, cfg.train.temperature, cfg.train.lambda_con, cfg.train.lambda_pl) == (
        0.7,
        0.15,
        0.1,
        0.5,
    )
    assert (cfg.train.lr, cfg.train.momentum, cfg.train.weight_decay) == (1e-3, 0.9, 8e-4)
    assert (cfg.train.optimizer, cfg.train.ulb_ratio, cfg.train.epochs, cfg.train.steps_per_epoch) == (
        "sgd",
        1.0,
        8,
        25,
    )


def test_paper_preset_has_the_reference_settings() -> None:
    cfg = build_config("paper")
    assert cfg.learner.name == "finetune"
    assert (cfg.model.backbone, cfg.data.image_size, cfg.train.epochs) == ("resnet50", 224, 200)
    assert (cfg.initial, cfg.query.budget) == (180, 180)
    assert cfg.rounds + 1 == 10  # ten trainings, 180 ... 1,800 labels, as in the reference code
    assert cfg.train.batch_size == 128 and cfg.train.steps_per_epoch is None


def test_gpu_frozen_preset_uses_a_foundation_model_at_224_px() -> None:
    cfg = build_config("gpu-frozen")
    assert (cfg.learner.name, cfg.model.backbone, cfg.data.image_size) == ("frozen", "uni", 224)


def test_learner_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="learner.networks must be 2"):
        build_config("cpu", {"learner": {"networks": 1}})
    assert build_config("cpu", {"learner": {"mode": "supervised", "networks": 1}}).learner.networks == 1
    with pytest.raises(ConfigError, match="learner.mode"):
        build_config("cpu", {"learner": {"mode": "semi"}})
    with pytest.raises(ConfigError, match="features.views"):
        build_config("cpu", {"features": {"views": "d16"}})
    with pytest.raises(ConfigError, match="features.predict_views"):
        build_config("cpu", {"features": {"predict_views": "max"}})
    with pytest.raises(ConfigError, match="train.optimizer"):
        build_config("cpu", {"train": {"optimizer": "adam"}})


def test_file_then_flags_override_the_preset() -> None:
    cfg = build_config("cpu", {"seed": 4, "query": {"budget": 12}}, {"query": {"budget": 7}})
    assert cfg.seed == 4 and cfg.query.budget == 7 and cfg.query.strategy == "unisal"


def test_unknown_keys_and_bad_values_are_named() -> None:
    with pytest.raises(ConfigError, match="'train.learning_rate'"):
        build_config("cpu", {"train": {"learning_rate": 1.0}})
    with pytest.raises(ConfigError, match="unknown preset 'gpu'"):
        build_config("gpu")
    with pytest.raises(ConfigError, match="tau"):
        build_config("cpu", {"train": {"tau": 1.5}})
    with pytest.raises(ConfigError, match="budget"):
        build_config("cpu", {"query": {"budget": 0}})
    with pytest.raises(ConfigError, match="must be a mapping"):
        build_config("cpu", {"train": 3})


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_yaml(bad)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(tmp_path / "list.yaml")


def test_round_trip_through_dict() -> None:
    for name in PRESETS:
        cfg = build_config(name)
        assert from_dict(to_dict(cfg)) == cfg


def test_only_given_flags_become_overrides() -> None:
    nested = overrides_from_flags(
        {"budget": 5, "epochs": None, "pretrained": False, "seed": 0, "quiet": True}
    )
    assert nested == {"query": {"budget": 5}, "model": {"pretrained": False}, "seed": 0}


def test_apply_overrides_checks_keys_and_values() -> None:
    from unisal.config import apply_overrides

    cfg = build_config("cpu")
    apply_overrides(cfg, {"train": {"epochs": 3}, "seed": 9})
    assert cfg.train.epochs == 3 and cfg.seed == 9 and cfg.train.lr == 1e-3
    with pytest.raises(ConfigError, match="'train.epoch'"):
        apply_overrides(cfg, {"train": {"epoch": 3}})
    with pytest.raises(ConfigError, match="epochs"):
        apply_overrides(cfg, {"train": {"epochs": 0}})


def test_stored_paths_are_absolute_and_normalised(tmp_path, monkeypatch) -> None:
    from unisal.config import absolute_paths

    monkeypatch.chdir(tmp_path)
    cfg = build_config("cpu", {"data": {"path": "runs/../data/lung", "groups": "./g.csv"}, "out": "x/../out"})
    cfg = absolute_paths(cfg)
    here = Path.cwd()  # tmp_path as the OS names it
    assert cfg.data.path == str(here / "data" / "lung") and cfg.data.groups == str(here / "g.csv")
    assert cfg.out == str(here / "out")
    cfg.data.path = "https://example.org/data.zip"
    assert absolute_paths(cfg).data.path == "https://example.org/data.zip"  # URLs stay as they are


def test_the_pinned_v1_files_equal_the_v1_recipe() -> None:
    """benchmarks/unisal-v1.yaml (and the v1 part of val-fraction-10.yaml) pin what the recipe
    v1 pins, and on the cpu preset they undo exactly the robust training of issue 15."""
    from pathlib import Path

    from unisal.config import RECIPES, ROBUST_TRAINING, load_yaml, to_dict

    root = Path(__file__).resolve().parents[1] / "benchmarks"
    v1 = load_yaml(root / "unisal-v1.yaml")
    assert v1 == RECIPES["v1"]
    old = load_yaml(root / "val-fraction-10.yaml")
    assert {k: old[k] for k in ("query", "learner", "train")} == RECIPES["v1"]
    pinned, plain = to_dict(build_config("cpu", v1)), to_dict(build_config("cpu"))
    changed = {
        (s, k) for s in ("query", "learner", "train") for k in pinned[s] if pinned[s][k] != plain[s][k]
    }
    assert changed == {(s, k) for s, values in ROBUST_TRAINING.items() for k in values}


def test_a_renamed_key_is_read_under_its_old_name() -> None:
    """features.score became features.predict_views (issue 16): config files, benchmark.yaml and
    run folders written before keep working; giving both is an error, not a silent choice."""
    from click.testing import CliRunner

    from unisal.cli.main import cli

    assert build_config("cpu", {"features": {"score": "tta"}}).features.predict_views == "tta"
    with pytest.raises(ConfigError, match="'features.score' and 'features.predict_views' are one setting"):
        build_config("cpu", {"features": {"score": "tta", "predict_views": "first"}})
    for flag in ("--predict-views", "--score-views"):
        result = CliRunner().invoke(cli, ["simulate", flag, "sideways"])
        assert result.exit_code == 2 and "'sideways' is not one of 'mean', 'tta', 'first'" in result.output
