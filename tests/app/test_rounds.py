"""Project rounds on synthetic tiles: cold start, cross-validated and hold-out metrics, a queue
with guesses and reasons, and a failing round that leaves everything as it was."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from unisal.app.project import init_project, open_project
from unisal.app.rounds import ProjectSettings, run_round

CLASSES = ["red", "green", "blue"]


def settings(tmp_path: Path, **values: object) -> dict[str, object]:
    config = {
        "data": {"image_size": 32, "cache_dir": str(tmp_path / "cache")},
        "train": {"epochs": 2, "steps_per_epoch": 2, "batch_size": 8, "eval_every": 1},
    }
    return asdict(ProjectSettings(budget=5, config=config, **values))  # type: ignore[arg-type]


@pytest.fixture
def tiles(make_image_folder) -> Path:
    return make_image_folder(classes={"red": 10, "green": 10, "blue": 10}, size=32)


def label_queue(folder: Path, annotator: str = "alice") -> int:
    store = open_project(folder)
    n = 0
    while (item := store.lease_next(annotator)) is not None:
        store.set_label(item.image_id, item.path.split("/")[0], annotator)  # the folder is the truth
        n += 1
    return n


def test_rounds_go_from_cold_start_to_a_model_with_cross_validated_metrics(tiles: Path, tmp_path: Path):
    folder = tmp_path / "p"
    init_project(folder, images=tiles, classes=CLASSES, settings=settings(tmp_path))
    first = run_round(folder)
    assert first["status"] == "done" and first["checkpoint"] == "" and first["metrics"]["n_labels"] == 0
    store = open_project(folder)
    assert store.queue_length() == 5
    assert label_queue(folder) == 5
    ids = {r["path"]: r["id"] for r in store.images()}
    for path in (
        "red/red_9.png",
        "green/green_9.png",
        "blue/blue_9.png",
        "red/red_8.png",
        "green/green_8.png",
        "blue/blue_8.png",
    ):
        if path not in store.labels():
            store.set_label(ids[path], path.split("/")[0], "alice")
    second = run_round(folder)
    metrics = second["metrics"]
    assert second["status"] == "done" and (folder / second["checkpoint"]).is_file()
    assert metrics["source"].endswith("fold cross-validation") and 0.0 <= metrics["accuracy"] <= 1.0
    assert "accuracy_std" in metrics and metrics["n_labels"] == len(store.labels())
    item = store.lease_next("bob")
    assert item is not None and item.guess in CLASSES and 0 < item.guess_confidence <= 1  # type: ignore[operator]
    assert item.reason.startswith(("networks disagree", "fallback", "exploration"))
    assert item.path not in store.labels()
    # the whole pool's UniSAL scores by image id, for maps: every unlabelled image, no labelled one
    from unisal.app.rounds import scores_file
    from unisal.io import read_scores

    assert not scores_file(folder, first["id"]).exists()  # the cold start scores nothing
    index, score = read_scores(scores_file(folder, second["id"]))
    labelled_ids = {ids[path] for path in store.labels()}
    assert set(index.tolist()) == set(ids.values()) - labelled_ids
    assert len(score) == len(index) and score.dtype.name == "float16"


def test_a_labelled_hold_out_gives_the_metrics(tiles: Path, tmp_path: Path):
    (tmp_path / "test.csv").write_text(
        "path,label\n" + "".join(f"{c}/{c}_{i}.png,{c}\n" for c in CLASSES for i in (0, 1))
    )
    (tmp_path / "labels.csv").write_text(
        "path,label\n" + "".join(f"{c}/{c}_{i}.png,{c}\n" for c in CLASSES for i in (2, 3))
    )
    folder = tmp_path / "p"
    init_project(folder, images=tiles, classes=CLASSES, labels_csv=tmp_path / "labels.csv",
                 test_csv=tmp_path / "test.csv", settings=settings(tmp_path, strategy="entropy"))  # fmt: skip
    record = run_round(folder)
    assert record["metrics"]["source"] == "hold-out of 6" and record["metrics"]["n_labels"] == 6
    store = open_project(folder)
    queued = []
    while (item := store.lease_next("x")) is not None:
        queued.append(item)
        store.skip(item.image_id, "x")
    assert len(queued) == 5 and all(q.reason.startswith("entropy") for q in queued)
    test_paths = {f"{c}/{c}_{i}.png" for c in CLASSES for i in (0, 1)}
    assert not test_paths & {q.path for q in queued}  # the hold-out is never queued


def test_a_failing_round_keeps_labels_model_and_queue(
    tiles: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "labels.csv").write_text(
        "path,label\n" + "".join(f"{c}/{c}_{i}.png,{c}\n" for c in CLASSES for i in (2, 3))
    )
    folder = tmp_path / "p"
    init_project(
        folder, images=tiles, classes=CLASSES, labels_csv=tmp_path / "labels.csv", settings=settings(tmp_path)
    )
    good = run_round(folder)
    store = open_project(folder)
    before = ((folder / good["checkpoint"]).read_bytes(), store.labels(), store.queue_length())

    from unisal.learners.base import Learner

    def broken_fit(self: Learner, *args: object, **kwargs: object) -> None:
        raise MemoryError("simulated: out of memory")

    monkeypatch.setattr(Learner, "fit", broken_fit)
    with pytest.raises(MemoryError):
        run_round(folder)
    rounds = store.rounds()
    assert [r["status"] for r in rounds] == ["done", "failed"]
    assert rounds[1]["error"] == "MemoryError: simulated: out of memory"
    assert ((folder / good["checkpoint"]).read_bytes(), store.labels(), store.queue_length()) == before
    assert not (folder / "rounds" / "round_2.pt").exists()


def test_project_rounds_report_when_the_model_stopped_changing(tiles: Path, tmp_path: Path):
    """Each trained round's stop_kappa compares its predictions on the stop set with the last
    round's (the files in rounds/); status and the round's output say when it has stopped."""
    import json

    import numpy as np
    from click.testing import CliRunner

    from unisal.cli.main import cli
    from unisal.stopping import agreement_kappa

    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\n" + "".join(f"{c}/{c}_{i}.png,{c}\n" for c in CLASSES for i in range(3)))
    values = settings(tmp_path)
    values["config"]["query"] = {"stop_set": 12, "stop_window": 1, "stop_kappa": 0.0}  # type: ignore[index]
    folder = tmp_path / "p"
    init_project(folder, images=tiles, classes=CLASSES, labels_csv=labels, settings=values)
    first = run_round(folder)
    assert first["metrics"]["stop_kappa"] is None and first["metrics"]["stopped_changing"] is False
    label_queue(folder)
    result = CliRunner().invoke(cli, ["project", "round", str(folder)])
    assert result.exit_code == 0, result.output
    second = open_project(folder).rounds()[-1]
    a, b = (json.loads((folder / "rounds" / f"stop_set_{k}.json").read_text()) for k in (1, 2))
    assert len(a) == 12 and set(a) == set(b)
    expected = agreement_kappa(np.asarray([a[i] for i in sorted(a)]), np.asarray([b[i] for i in sorted(a)]))
    assert second["metrics"]["stop_kappa"] == round(expected, 6)
    assert second["metrics"]["stopped_changing"] is True  # the threshold 0 holds with one comparison
    assert "the model has stopped changing" in result.output
    status = CliRunner().invoke(cli, ["project", "status", str(folder)])
    assert "stop_kappa" in status.output and "the model has stopped changing" in status.output


def test_a_project_round_that_falls_back_says_so(
    tiles: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """With the guard (the cpu preset's default) a round records its verdict; when it falls back,
    `project round` and `project status` say why, and the metrics carry the interval."""
    from click.testing import CliRunner

    from unisal.cli.main import cli
    from unisal.guard import GuardVerdict
    from unisal.learners import base as learner_base

    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\n" + "".join(f"{c}/{c}_{i}.png,{c}\n" for c in CLASSES for i in range(4)))
    folder = tmp_path / "p"
    init_project(folder, images=tiles, classes=CLASSES, labels_csv=labels, settings=settings(tmp_path))
    verdict = GuardVerdict(True, "the co-trained heads predict red on 1.0% of the pool", 0.3, 0.05)
    monkeypatch.setattr(learner_base, "guard_verdict", lambda *a, **k: verdict)
    result = CliRunner().invoke(cli, ["project", "round", str(folder)])
    assert result.exit_code == 0, result.output
    assert "looked degenerate (the co-trained heads predict red on 1.0% of the pool)" in result.output
    metrics = open_project(folder).rounds()[-1]["metrics"]
    assert (
        metrics["guard_fallback"] == 1
        and 0.0 <= metrics["accuracy_low"] <= metrics["accuracy"] <= metrics["accuracy_high"]
    )
    status = CliRunner().invoke(cli, ["project", "status", str(folder)])
    assert "looked degenerate" in status.output and "95 % interval" in status.output
