"""A round's lock dies with its process: a `project round` killed with SIGKILL or SIGTERM is
recorded as failed with the reason, and the next round runs; a round held by a live process
(another process, or the web app's thread) is refused."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import sigkill_when
from unisal.app.project import init_project, open_project
from unisal.app.rounds import ProjectSettings, run_round
from unisal.app.store import ProjectError
from unisal.cli.main import cli

CLASSES = ["red", "green", "blue"]
KILLED = "the process running it ended without finishing it (killed?)"


@pytest.fixture
def folder(make_image_folder, tmp_path: Path) -> Path:
    """A project whose next round trains long enough to be stopped in the middle."""
    tiles = make_image_folder(classes={"red": 6, "green": 6, "blue": 6}, size=16)
    (tmp_path / "labels.csv").write_text(
        "path,label\n" + "".join(f"{c}/{c}_{i}.png,{c}\n" for c in CLASSES for i in range(3))
    )
    config = {
        "data": {"image_size": 16, "cache_dir": str(tmp_path / "cache")},
        "learner": {"name": "finetune"},
        "model": {"backbone": "test_resnet", "pretrained": False},
        "train": {"epochs": 400, "steps_per_epoch": 5, "batch_size": 8, "eval_every": 400},
    }
    folder = tmp_path / "p"
    init_project(folder, images=tiles, classes=CLASSES, labels_csv=tmp_path / "labels.csv",
                 settings=asdict(ProjectSettings(budget=3, folds=1, config=config)))  # fmt: skip
    return folder


def round_running(folder: Path) -> bool:
    conn = sqlite3.connect(folder / "project.db")
    try:
        return conn.execute("SELECT 1 FROM rounds WHERE status = 'running'").fetchone() is not None
    finally:
        conn.close()


def round_command(folder: Path) -> list[str]:
    return [sys.executable, "-m", "unisal", "project", "round", str(folder)]


def shorten_training(folder: Path) -> None:
    store = open_project(folder)
    values = store.settings()
    values["config"]["train"] = {"epochs": 2, "steps_per_epoch": 2, "batch_size": 8, "eval_every": 1}
    store.set_settings(values)


def test_a_sigkilled_round_is_recorded_failed_and_the_next_round_runs(folder: Path):
    sigkill_when(round_command(folder), lambda: round_running(folder))
    result = CliRunner().invoke(cli, ["project", "status", str(folder)])
    assert result.exit_code == 0, result.output
    assert f"round 1: failed, 9 labels ({KILLED})" in result.output
    shorten_training(folder)
    record = run_round(folder)
    assert record["id"] == 2 and record["status"] == "done"
    assert [(r["status"], r["error"]) for r in open_project(folder).rounds()] == [
        ("failed", KILLED),
        ("done", None),
    ]


def test_a_sigtermed_round_is_recorded_as_stopped_by_sigterm(folder: Path):
    process = subprocess.Popen(round_command(folder), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while not round_running(folder):
        assert time.time() < deadline and process.poll() is None, process.stdout.read()  # type: ignore[union-attr]
        time.sleep(0.05)
    time.sleep(0.5)  # in the middle of the work
    os.kill(process.pid, signal.SIGTERM)
    output = process.communicate(timeout=120)[0].decode()
    assert process.returncode == 1 and "Traceback" not in output, output
    assert [(r["status"], r["error"]) for r in open_project(folder).rounds()] == [
        ("failed", "stopped by SIGTERM")
    ]
    shorten_training(folder)
    assert run_round(folder)["status"] == "done"


def test_a_round_held_by_a_live_process_is_refused_and_not_marked_failed(folder: Path):
    store = open_project(folder)
    with store.round_lock():  # as the web app's round thread holds it, in this very process
        store.start_round({})
        with pytest.raises(ProjectError, match=r"^a round is already running; wait for it to finish$"):
            run_round(folder)
        result = CliRunner().invoke(cli, ["project", "status", str(folder)])
        assert "round 1: running" in result.output
        process = subprocess.run(round_command(folder), capture_output=True, text=True, timeout=300)
        assert process.returncode == 1
        assert "Error: a round is already running; wait for it to finish" in process.stderr
    assert [r["status"] for r in store.rounds()] == ["running"]
    result = CliRunner().invoke(cli, ["project", "status", str(folder)])
    assert f"round 1: failed, 9 labels ({KILLED})" in result.output  # nobody holds it now


def test_the_app_shows_a_killed_round_as_failed_not_running(folder: Path):
    """A round whose process is gone (marked running, nobody holds the lock) is recorded failed
    when the page next asks for the state, and the page can start a round again."""
    from fastapi.testclient import TestClient

    from unisal.app.server import TOKEN_HEADER, create_app

    open_project(folder).start_round({"as": "a killed process left it"})
    client = TestClient(create_app(folder, "t", hosts={"testserver"}), headers={TOKEN_HEADER: "t"})
    state = client.get("/api/state").json()
    assert state["round_running"] is False
    assert [(r["status"], r["error"]) for r in state["rounds"]] == [("failed", KILLED)]
