"""The AL loop end to end on real lung tiles: outputs, invariants, kill-and-resume."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import sigkill_when
from tests.lung_subset import LUNG, write_lung_subset
from unisal.config import RunConfig, build_config, from_dict
from unisal.loop import NOT_LABELLED, ActiveLearningRun, ALState, RunError

pytestmark = pytest.mark.skipif(
    not LUNG.is_dir(), reason="../shared/data/lc25000-lung not found: real tiles needed"
)

TINY = {
    "data": {
        "image_size": 32,
        "format": "csv",
        "test_fraction": 0.3,
    },  # 5 groups: a test split with no validation
    "train": {"epochs": 2, "steps_per_epoch": 2, "batch_size": 8, "eval_every": 1, "eval_batch_size": 64},
    "query": {"budget": 4},
    "initial": 6,
    "rounds": 2,
}


def tiny_config(tmp_path: Path, learner: str, out: str, **overrides: object) -> RunConfig:
    data_csv, groups_csv = write_lung_subset(tmp_path / "data", per_class=20)
    values = json.loads(json.dumps(TINY))
    values["learner"] = {"name": learner}
    if learner == "frozen":  # heads are fast: more steps, so that a round lasts long enough to be killed in
        values["train"] |= {"epochs": 4, "steps_per_epoch": 25}
    else:  # the loop is under test, not the backbone: a tiny network (Lite0's fine-tuning runs in test_learner_cli)
        values["model"] = {"backbone": "test_resnet", "pretrained": False}
    # One cache for the session (pytest's base folder, the parent of every tmp_path): the image and
    # feature caches are keyed by the files' bytes and the settings, and no test here tests them.
    cache = tmp_path.parent / "shared-cache"
    values["data"] |= {"path": str(data_csv), "groups": str(groups_csv), "cache_dir": str(cache)}
    values["out"] = str(tmp_path / out)
    for key, value in overrides.items():
        section, _, leaf = key.partition("__")
        if leaf:
            values.setdefault(section, {})[leaf] = value
        else:
            values[section] = value
    return build_config("cpu", values)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def outcome(out: Path) -> tuple[list[tuple[str, ...]], dict[str, list[dict[str, str]]]]:
    """What must match between runs: metrics per round and every query file."""
    rounds = [
        tuple(r[c] for c in ("round", "n_labeled", "accuracy", "macro_f1", "n_candidates"))
        for r in read_rows(out / "rounds.csv")
    ]
    queries = {p.name: read_rows(p) for p in sorted((out / "queries").glob("*.csv"))}
    return rounds, queries


@pytest.fixture(scope="module", params=["frozen", "finetune"])
def learner(request: pytest.FixtureRequest) -> str:
    """Every test of the loop runs with both learners."""
    return str(request.param)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, learner: str) -> Path:
    tmp = tmp_path_factory.mktemp("loop")
    cfg = tiny_config(tmp, learner, "run")
    ActiveLearningRun(cfg).run()
    return Path(cfg.out)


def test_run_writes_every_promised_output(finished_run: Path) -> None:
    out = finished_run
    for name in ("config.yaml", "rounds.csv", "timings.csv", "splits.csv", "state.json"):
        assert (out / name).is_file(), name
    rows = read_rows(out / "rounds.csv")
    assert [int(r["round"]) for r in rows] == [0, 1, 2]
    assert [int(r["n_labeled"]) for r in rows] == [6, 10, 14]
    for column in ("accuracy", "macro_f1", "macro_precision", "macro_recall"):
        assert all(float(r[column]) >= 0.0 for r in rows)
    timings = read_rows(out / "timings.csv")  # wall-clock times: apart, so that rounds.csv reproduces
    assert [int(r["round"]) for r in timings] == [0, 1, 2] and "train_seconds" not in rows[0]
    assert all(float(r["train_seconds"]) >= 0.0 for r in timings) and timings[-1]["select_seconds"] == ""
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 for r in rows)
    assert rows[0]["n_candidates"] != "" and rows[-1]["n_candidates"] == ""  # no query after the last round
    assert sorted(p.name for p in (out / "queries").glob("*.csv")) == ["round_1.csv", "round_2.csv"]
    assert sorted(p.name for p in (out / "confusion").glob("*.csv")) == [f"round_{r}.csv" for r in range(3)]
    assert sorted(p.name for p in (out / "checkpoints").glob("*.pt")) == [f"round_{r}.pt" for r in range(3)]
    history = read_rows(out / "history" / "round_1.csv")
    epochs = yaml.safe_load((out / "config.yaml").read_text())["train"]["epochs"]
    assert [int(float(r["epoch"])) for r in history] == list(range(1, epochs + 1))  # one row per epoch
    assert {"ce", "pl", "con", "confident", "agree"} <= set(history[0])
    has_val = any(r["split"] == "val" for r in read_rows(out / "splits.csv"))
    assert ("val_accuracy" in history[0]) == has_val


def test_queries_come_from_the_pool_once_each_with_true_labels(finished_run: Path) -> None:
    splits = {r["path"]: r for r in read_rows(finished_run / "splits.csv")}
    queried = [
        q for name in ("round_1.csv", "round_2.csv") for q in read_rows(finished_run / "queries" / name)
    ]
    assert len(queried) == 8
    assert len({q["path"] for q in queried}) == 8
    for q in queried:
        assert splits[q["path"]]["split"] == "train"
        assert q["label"] == splits[q["path"]]["label"]
        assert q["reason"]
    state = ALState.from_state_dict(json.loads((finished_run / "state.json").read_text()))
    assert state.stage == "done"
    assert sorted(np.bincount(state.labelled_round[state.labelled_round != NOT_LABELLED])) == [4, 4, 6]


def test_confusion_matrix_counts_the_test_split(finished_run: Path) -> None:
    splits = read_rows(finished_run / "splits.csv")
    n_test = sum(r["split"] == "test" for r in splits)
    rows = read_rows(finished_run / "confusion" / "round_2.csv")
    assert [r["true\\predicted"] for r in rows] == ["lung_aca", "lung_n", "lung_scc"]
    assert sum(int(v) for r in rows for k, v in r.items() if k != "true\\predicted") == n_test


def test_splits_never_share_a_group(finished_run: Path) -> None:
    split_of_group: dict[str, set[str]] = {}
    for r in read_rows(finished_run / "splits.csv"):
        split_of_group.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in split_of_group.values())


def test_existing_run_is_not_overwritten(finished_run: Path, learner: str, tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, learner, "x")
    cfg.out = str(finished_run)
    with pytest.raises(RunError, match="already holds a run"):
        ActiveLearningRun(cfg).run()


def test_budget_larger_than_pool_is_refused(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, "frozen", "big", query__budget=1000)
    with pytest.raises(RunError, match="training pool holds only"):
        ActiveLearningRun(cfg).run()
    assert not Path(cfg.out).exists()  # refused before anything was written


class Killed(BaseException):
    """Stands in for SIGKILL inside the process: nothing after it runs."""


@pytest.mark.parametrize("stage", ["during training", "before selection"])
def test_interrupted_run_resumes_to_the_same_result(
    finished_run: Path, learner: str, tmp_path: Path, stage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_config(tmp_path, learner, "killed")
    calls = {"n": 0}
    original_fit = __import__("unisal.learners.base", fromlist=["fit"]).fit
    original_select = ActiveLearningRun.select_and_label

    # fits a round: the co-training, and before it the supervised heads of the warm start and guard
    per_round = 2 if cfg.train.warm_start or cfg.learner.guard != "off" else 1

    def fit_then_die(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == per_round + 1:  # the first fit of round 1
            raise Killed
        return original_fit(*args, **kwargs)

    def select_then_die(self: ActiveLearningRun, round_: int) -> object:
        if round_ == 1:
            raise Killed
        return original_select(self, round_)

    with monkeypatch.context() as patch:
        if stage == "during training":
            patch.setattr("unisal.learners.base.fit", fit_then_die)
        else:
            patch.setattr(ActiveLearningRun, "select_and_label", select_then_die)
        with pytest.raises(Killed):
            ActiveLearningRun(cfg).run()
    state = json.loads((Path(cfg.out) / "state.json").read_text())
    assert state["round"] == 1 and state["stage"] == ("train" if stage == "during training" else "select")
    ActiveLearningRun(cfg, resume=True).run()
    assert outcome(Path(cfg.out)) == outcome(finished_run)


def test_resume_refuses_changed_settings(finished_run: Path, learner: str, tmp_path: Path) -> None:
    before = (finished_run / "config.yaml").read_text()
    cfg = from_dict(yaml.safe_load(before))
    budget = cfg.query.budget
    cfg.query.budget += 2
    cfg.train.lr *= 2
    with pytest.raises(RunError) as excinfo:
        ActiveLearningRun(cfg, resume=True).run()
    assert (
        f"settings differ from those of the run in {finished_run} (query.budget: run {budget}, now {budget + 2}; train.lr: run"
        in str(excinfo.value)
    )
    assert (finished_run / "config.yaml").read_text() == before


@pytest.mark.slow
def test_sigkilled_cli_run_resumes_to_the_same_result(
    finished_run: Path, learner: str, tmp_path: Path
) -> None:
    """A real SIGKILL of `unisal simulate` in round 1, then `--resume`."""
    cfg = tiny_config(tmp_path, learner, "sigkill")
    args = [
        sys.executable,
        "-m",
        "unisal",
        "simulate",
        "--quiet",
        "--format",
        "csv",
        "--data",
        cfg.data.path,
        "--groups",
        str(cfg.data.groups),
        "--cache-dir",
        str(cfg.data.cache_dir),
        "--image-size",
        "32",
        "--epochs",
        str(cfg.train.epochs),
        "--steps-per-epoch",
        str(cfg.train.steps_per_epoch),
        "--batch-size",
        "8",
        "--initial",
        "6",
        "--budget",
        "4",
        "--rounds",
        "2",
        "--out",
        cfg.out,
        "--learner",
        learner,
        *(["--backbone", "test_resnet", "--no-pretrained"] if learner == "finetune" else []),
    ]
    config_file = tmp_path / "extra.yaml"
    config_file.write_text(
        f"data:\n  test_fraction: {cfg.data.test_fraction}\ntrain:\n  eval_every: 1\n  eval_batch_size: 64\n"
    )
    args += ["--config", str(config_file)]
    state_file = Path(cfg.out) / "state.json"

    def in_round_one() -> bool:  # round 0 done: killed while selecting or training round 1
        return state_file.is_file() and json.loads(state_file.read_text())["round"] == 1

    sigkill_when(args, in_round_one)
    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    assert outcome(Path(cfg.out)) == outcome(finished_run)


def test_finished_run_can_be_extended_by_more_rounds(
    finished_run: Path, learner: str, tmp_path: Path
) -> None:
    cfg = tiny_config(tmp_path, learner, "short", rounds=1)
    ActiveLearningRun(cfg).run()
    longer = tiny_config(tmp_path, learner, "short", rounds=2)
    ActiveLearningRun(longer, resume=True).run()
    assert outcome(Path(cfg.out)) == outcome(finished_run)
    fewer = tiny_config(tmp_path, learner, "short", rounds=1)
    with pytest.raises(RunError, match="already reached round 2"):
        ActiveLearningRun(fewer, resume=True).run()
