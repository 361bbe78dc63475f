"""The AL loop on synthetic colour tiles (never skips): kill-and-resume, and nothing written before the checks."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from unisal.config import ConfigError, RunConfig, build_config
from unisal.errors import RunError
from unisal.loop import ActiveLearningRun
from unisal.models.backbones import WeightsError


def config(root: Path, tmp_path: Path, out: str, learner: str, **values: object) -> RunConfig:
    base = {
        "data": {"path": str(root), "image_size": 32, "cache_dir": str(tmp_path / "cache")},
        "learner": {"name": learner},
        "train": {"epochs": 2, "steps_per_epoch": 2, "batch_size": 8, "eval_every": 1},
        "query": {"budget": 3},
        "initial": 6,
        "rounds": 2,
        "out": str(tmp_path / out),
    }
    for key, value in values.items():
        section, _, leaf = key.partition("__")
        if leaf:
            base.setdefault(section, {})[leaf] = value  # type: ignore[index]
        else:
            base[section] = value
    return build_config("cpu" if learner == "frozen" else "cpu-finetune", base)


def outcome(out: Path) -> list[list[str]]:
    with (out / "rounds.csv").open(newline="") as handle:
        rounds = [[r["n_labeled"], r["accuracy"], r["n_candidates"]] for r in csv.DictReader(handle)]
    queries = [(out / "queries" / f"round_{k}.csv").read_text().splitlines() for k in (1, 2)]
    return rounds + queries


class Killed(BaseException):
    """Stands in for SIGKILL inside the process: nothing after it runs."""


@pytest.mark.parametrize("learner", ["frozen", "finetune"])
def test_a_run_killed_before_selection_resumes_to_the_same_result(
    make_image_folder, tmp_path: Path, learner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_image_folder(classes={"red": 12, "green": 12, "blue": 12}, size=32)
    # the loop is under test: the fine-tune learner trains a tiny network (Lite0's in test_learner_cli)
    tiny: dict[str, object] = (
        {"model__backbone": "test_resnet", "model__pretrained": False} if learner == "finetune" else {}
    )
    ActiveLearningRun(config(root, tmp_path, "whole", learner, **tiny)).run()

    original = ActiveLearningRun.select_and_label

    def select_then_die(self: ActiveLearningRun, round_: int) -> object:
        if round_ == 1:
            raise Killed
        return original(self, round_)

    killed = config(root, tmp_path, "killed", learner, **tiny)
    with monkeypatch.context() as patch:
        patch.setattr(ActiveLearningRun, "select_and_label", select_then_die)
        with pytest.raises(Killed):
            ActiveLearningRun(killed).run()
    ActiveLearningRun(killed, resume=True).run()
    assert outcome(tmp_path / "killed") == outcome(tmp_path / "whole")


def test_constructor_checks_settings_and_touches_nothing(make_image_folder, tmp_path: Path) -> None:
    root = make_image_folder(classes={"red": 4, "green": 4}, size=32)
    with pytest.raises(ConfigError, match="unknown backbone"):
        ActiveLearningRun(config(root, tmp_path, "out", "frozen", model__backbone="efficientnet_lite9"))
    with pytest.raises(
        ConfigError, match=r"'query.strategy' must be one of .*, not 'coreset9' \(did you mean 'coreset'\?\)"
    ):
        ActiveLearningRun(config(root, tmp_path, "out", "frozen", query__strategy="coreset9"))
    run = ActiveLearningRun(config(root, tmp_path, "out", "frozen"))
    assert run.state is None
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_bad_weights_fail_before_the_out_folder_exists(make_image_folder, tmp_path: Path) -> None:
    root = make_image_folder(classes={"red": 12, "green": 12}, size=32)
    missing = str(tmp_path / "no-such-weights.pth")
    for learner in ("frozen", "finetune"):
        cfg = config(root, tmp_path, f"out-{learner}", learner, model__weights=missing)
        with pytest.raises(WeightsError, match="weights file not found"):
            ActiveLearningRun(cfg).run()
        assert not Path(cfg.out).exists()


def test_out_that_is_a_file_is_refused(make_image_folder, tmp_path: Path) -> None:
    root = make_image_folder(classes={"red": 4, "green": 4}, size=32)
    (tmp_path / "file").write_text("not a folder")
    cfg = config(root, tmp_path, "file", "frozen")
    with pytest.raises(RunError, match="is a file"):
        ActiveLearningRun(cfg).run()


def test_every_round_reports_whether_the_predictions_stopped_changing(
    make_image_folder, tmp_path: Path
) -> None:
    """rounds.csv's stop_kappa is Cohen's kappa between successive rounds' predictions on the
    stop set (blank in round 0), recomputed here from the stop_set/ files; stopped_changing is 1
    from the round where the window's mean kappa reaches the threshold; 0 images turn it off."""
    from unisal.stopping import agreement_kappa, first_stop

    root = make_image_folder(classes={"red": 12, "green": 12, "blue": 12}, size=32)
    cfg = config(root, tmp_path, "run", "frozen", rounds=4, query__stop_set=10, query__stop_window=2,
                 query__stop_kappa=0.5)  # fmt: skip
    ActiveLearningRun(cfg).run()
    out = Path(cfg.out)
    with (out / "rounds.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    predicted = []
    for k in range(5):
        with (out / "stop_set" / f"round_{k}.csv").open(newline="") as handle:
            table = list(csv.DictReader(handle))
        assert len(table) == 10 and {r["predicted"] for r in table} <= {"red", "green", "blue"}
        predicted.append([r["predicted"] for r in table])
    assert rows[0]["stop_kappa"] == ""
    kappas = [None] + [
        agreement_kappa(np.asarray(predicted[k - 1]), np.asarray(predicted[k])) for k in range(1, 5)
    ]
    assert [float(r["stop_kappa"]) for r in rows[1:]] == pytest.approx([round(k, 6) for k in kappas[1:]])
    fired = first_stop(kappas, window=2, threshold=0.5)
    assert [int(r["stopped_changing"]) for r in rows] == [
        int(fired is not None and k >= fired) for k in range(5)
    ]
    import json

    for k, row in enumerate(rows):  # the collapse signals: rounds.csv sums up diagnostics/round_<k>.json
        record = json.loads((out / "diagnostics" / f"round_{k}.json").read_text())
        assert len(record["networks"]) == 2 and set(record["networks"][0]["pool_shares"]) == {
            "red",
            "green",
            "blue",
        }
        assert sum(record["networks"][1]["pool_shares"].values()) == pytest.approx(1.0, abs=1e-5)
        assert float(row["heads_agree"]) == record["heads_agree"] and 0.0 <= record["heads_agree"] <= 1.0
        assert float(row["pool_share_min"]) == record["pool_share_min"]
    history = (out / "history" / "round_1.csv").read_text().splitlines()[0].split(",")
    assert {"lb_0", "lb_1", "lb_2", "mask_a", "pl_a_0", "pl_b_2"} <= set(history)
    off = config(root, tmp_path, "off", "frozen", query__stop_set=0)
    ActiveLearningRun(off).run()
    assert "stop_kappa" not in (Path(off.out) / "rounds.csv").read_text().splitlines()[0]


def test_guard_and_cross_validation_columns_in_rounds_csv(make_image_folder, tmp_path: Path) -> None:
    """With the guard on and query.cv_folds 2, every round writes the guard's verdict, the test
    accuracy of both sets of heads, and a cross-validated accuracy inside its own interval."""
    root = make_image_folder(classes={"red": 12, "green": 12, "blue": 12}, size=32)
    cfg = config(root, tmp_path, "guarded", "frozen", learner__guard="fallback", query__cv_folds=2)
    ActiveLearningRun(cfg).run()
    with (tmp_path / "guarded" / "rounds.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    for row in rows:
        assert row["guard_fallback"] in ("0", "1") and float(row["guard_share_ratio"]) >= 0.0
        chosen = row["accuracy_supervised"] if row["guard_fallback"] == "1" else row["accuracy_cotrain"]
        assert float(chosen) == pytest.approx(float(row["accuracy"]))
        assert float(row["cv_low"]) <= float(row["cv_accuracy"]) <= float(row["cv_high"])
    plain = config(root, tmp_path, "plain", "frozen", learner__guard="off")
    ActiveLearningRun(plain).run()
    header = (tmp_path / "plain" / "rounds.csv").read_text().splitlines()[0]
    assert "guard_fallback" not in header and "cv_accuracy" not in header and "stop_kappa" in header


def test_every_round_writes_the_whole_pools_scores_and_the_queries_are_their_top(
    make_image_folder, tmp_path: Path
) -> None:
    """scores/round_R.npz: every unlabelled image's score (float16) by catalogue index; margin's
    queries are the highest scores; random sampling has no scores and writes none."""
    from unisal.io import read_scores
    from unisal.run_folder import RunFolder

    root = make_image_folder(classes={"red": 10, "green": 10, "blue": 10}, size=32)
    ActiveLearningRun(config(root, tmp_path, "margin", "frozen", query__strategy="margin")).run()
    out = tmp_path / "margin"
    state = RunFolder(out).read_state()
    train = set(np.flatnonzero(RunFolder(out).read_split() == "train").tolist())
    for round_ in (1, 2):
        index, score = read_scores(out / "scores" / f"round_{round_}.npz")
        before = set(state.labelled(up_to_round=round_ - 1).tolist())
        labelled_now = set(state.labelled(up_to_round=round_).tolist()) - before
        assert score.dtype == np.float16
        assert set(index.tolist()) == train - before and len(index) == len(train - before)  # the whole pool
        top = set(index[np.argsort(-score.astype(np.float64), kind="stable")[:3]].tolist())
        chosen_scores = {float(score[list(index).index(i)]) for i in labelled_now}
        assert labelled_now == top or min(chosen_scores) >= np.sort(score)[-3]  # ties in float16
    ActiveLearningRun(config(root, tmp_path, "random", "frozen", query__strategy="random")).run()
    assert not (tmp_path / "random" / "scores").exists()
