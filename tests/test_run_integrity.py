"""Issue 8: resumed runs check their data and state, one run per folder, folders never left
unusable, paths stored absolute, damaged run files named with what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from unisal.cli.main import cli

FAST = ["--image-size", "32", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8", "--quiet"]
SIZES = ["--initial", "6", "--budget", "3", "--rounds", "2"]


@pytest.fixture
def tiles(make_image_folder) -> Path:
    return make_image_folder(classes={"red": 12, "green": 12, "blue": 12}, size=32)


def simulate(tiles: Path, tmp_path: Path, out: Path, *extra: str) -> tuple[int, str]:
    args = [
        "simulate",
        "--data",
        str(tiles),
        "--cache-dir",
        str(tmp_path / "cache"),
        *FAST,
        *SIZES,
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(cli, [*args, *extra])
    return result.exit_code, result.output


def finished_run(tiles: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    code, output = simulate(tiles, tmp_path, out, "--rounds", "1")
    assert code == 0, output
    return out


def test_resume_refuses_changed_data_of_the_same_size(tiles: Path, tmp_path: Path):
    out = finished_run(tiles, tmp_path)
    (tiles / "red" / "red_0.png").rename(tiles / "green" / "red_0.png")  # same count, another label
    code, output = simulate(tiles, tmp_path, out, "--resume")
    assert code != 0 and "image(s) differ from the run's splits.csv" in output, output
    assert "Traceback" not in output


def test_resume_refuses_a_state_that_labels_a_test_image(tiles: Path, tmp_path: Path):
    out = finished_run(tiles, tmp_path)
    splits = (out / "splits.csv").read_text().splitlines()
    test_row = next(k for k, line in enumerate(splits[1:]) if line.endswith(",test"))
    state = json.loads((out / "state.json").read_text())
    state["labelled_round"][test_row] = 0
    (out / "state.json").write_text(json.dumps(state))
    code, output = simulate(tiles, tmp_path, out, "--resume")
    assert code != 0 and "labels 1 image(s) outside the training pool" in output and "(test)" in output, (
        output
    )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("state", "cannot read"),
        ("state-values", "cannot read"),
        ("config", "cannot read"),
    ],
)
def test_damaged_run_files_are_named_with_what_to_do(tiles: Path, tmp_path: Path, damage: str, message: str):
    out = finished_run(tiles, tmp_path)
    if damage == "state":
        (out / "state.json").write_text("{truncated")
    elif damage == "state-values":
        state = json.loads((out / "state.json").read_text())
        state["stage"] = "dancing"
        (out / "state.json").write_text(json.dumps(state))
    else:
        (out / "config.yaml").write_text("data: [unclosed")
    code, output = simulate(tiles, tmp_path, out, "--resume")
    assert code != 0 and message in output and "the run folder is damaged" in output, output
    assert "Traceback" not in output


def test_a_missing_checkpoint_is_trained_again(tiles: Path, tmp_path: Path):
    out = finished_run(tiles, tmp_path)
    before = (out / "rounds.csv").read_text()
    (out / "checkpoints" / "round_1.pt").unlink()
    state = json.loads((out / "state.json").read_text())
    state["stage"] = "select"  # as if killed after training round 1, before its selection
    (out / "state.json").write_text(json.dumps(state))
    code, output = simulate(tiles, tmp_path, out, "--resume", "--rounds", "2")
    assert code == 0, output
    assert "checkpoint is missing; training the round again" in output
    rows = (out / "rounds.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[1].split(",")[:3] == before.splitlines()[1].split(",")[:3]


def test_a_folder_that_is_not_a_run_is_refused_and_a_file_too(tiles: Path, tmp_path: Path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "rounds.csv").write_text("precious")
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    code, output = simulate(tiles, tmp_path, tmp_path / "mine")
    assert code != 0 and "is not empty and holds no unisal run (notes.txt, rounds.csv)" in output
    assert (tmp_path / "mine" / "rounds.csv").read_text() == "precious"
    (tmp_path / "afile").write_text("x")
    code, output = simulate(tiles, tmp_path, tmp_path / "afile")
    assert code != 0 and "is a file, not a folder" in output


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("config.yaml", "keep"),
        ("config.yaml", "data: mine\n"),
        ("rounds.csv", "precious"),
        ("state.json", '{"a": 1}'),
    ],
)
def test_files_with_a_runs_names_do_not_make_a_folder_a_run(
    tiles: Path, tmp_path: Path, name: str, text: str
):
    """Only a state.json or a config.yaml that parses as unisal's makes a folder a run: a folder
    holding just a file with one of the names a run writes (a user's state.json too) is someone
    else's, never overwritten."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / name).write_text(text)
    code, output = simulate(tiles, tmp_path, mine)
    assert code != 0 and f"is not empty and holds no unisal run ({name})" in output, output
    assert [p.name for p in mine.iterdir()] == [name] and (mine / name).read_text() == text


def test_a_run_that_failed_before_its_first_result_restarts_with_the_same_command(
    tiles: Path, tmp_path: Path
):
    out = tmp_path / "run"
    code, output = simulate(tiles, tmp_path, out, "--rounds", "1")
    assert code == 0, output
    state = json.loads((out / "state.json").read_text())
    state.update(results=[], round=0, stage="train")  # as if round 0 crashed before any result
    state["labelled_round"] = [r if r <= 0 else -1 for r in state["labelled_round"]]
    (out / "state.json").write_text(json.dumps(state))
    code, output = simulate(tiles, tmp_path, out, "--rounds", "1")
    assert code == 0 and "stopped before its first result: starting it again" in output, output
    code, output = simulate(tiles, tmp_path, out, "--rounds", "1")
    assert code != 0 and "already holds a run" in output  # one with results is never overwritten


def test_a_bad_setting_leaves_no_folder_behind(tiles: Path, tmp_path: Path):
    out = tmp_path / "never"
    code, output = simulate(tiles, tmp_path, out, "--backbone", "resnet5O")
    assert code != 0 and not out.exists(), output
    code, output = simulate(tiles, tmp_path, out, "--budget", "500")  # fails after reading the data
    assert code != 0 and "training pool holds only" in output and not out.exists()


def test_paths_are_stored_absolute(tiles: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tiles.parent)
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--data",
            tiles.name,
            "--cache-dir",
            str(tmp_path / "cache"),
            *FAST,
            *SIZES,
            "--rounds",
            "1",
            "--out",
            "rel-run",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "results in rel-run/rounds.csv" in result.output
    import yaml

    config = yaml.safe_load((tiles.parent / "rel-run" / "config.yaml").read_text())
    assert config["data"]["path"] == str(tiles) and config["out"] == str(tiles.parent / "rel-run")
    monkeypatch.chdir(tmp_path)  # supervised and --resume work from anywhere
    result = CliRunner().invoke(
        cli, ["supervised", "--run", str(tiles.parent / "rel-run"), "--out", str(tmp_path / "sup"), "--quiet"]
    )
    assert result.exit_code == 0, result.output


LOCK_HOLDER = """
import sys, time
from unisal.run_folder import RunFolder
with RunFolder(sys.argv[1]).locked():
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_second_run_on_a_locked_folder_is_refused(tiles: Path, tmp_path: Path):
    out = tmp_path / "busy"
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        code, output = simulate(tiles, tmp_path, out)
        assert code != 0 and "another unisal process is using" in output, output
        assert sorted(p.name for p in out.iterdir()) == [".unisal.lock"]
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    code, output = simulate(tiles, tmp_path, out, "--rounds", "1")  # the lock died with its process
    assert code == 0, output
    assert os.path.exists(out / "state.json")


def test_a_huge_batch_is_capped_at_the_data(tiles: Path, tmp_path: Path):
    out = tmp_path / "big"
    code, output = simulate(
        tiles,
        tmp_path,
        out,
        "--batch-size",
        "100000",
        "--rounds",
        "1",
        "--learner",
        "finetune",
        "--preset",
        "cpu-finetune",
    )
    assert code == 0, output
    assert "--batch-size 100000 is more than the data holds:" in output


def test_a_step_that_cannot_fit_in_memory_is_refused_before_anything_is_written(
    tiles: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import unisal.memory

    monkeypatch.setattr(unisal.memory, "available_bytes", lambda device: 50_000_000)
    out = tmp_path / "small-machine"
    code, output = simulate(
        tiles,
        tmp_path,
        out,
        "--learner",
        "finetune",
        "--preset",
        "cpu-finetune",
        "--batch-size",
        "64",
        "--image-size",
        "96",
    )
    assert (
        code != 0
        and "needs about" in output
        and "more than the 50 MB free on cpu; lower --batch-size (now 64)" in output
    )
    assert not out.exists()


@pytest.mark.parametrize("where", ["under-a-file", "long-name"])
def test_an_out_that_cannot_be_created_is_one_line_before_any_work(tiles: Path, tmp_path: Path, where: str):
    """simulate, benchmark and supervised: an --out under a file (`/dev/null/x`) or with a name
    past the file system's 255 bytes is refused at once, naming it; nothing is trained."""
    out = Path("/dev/null/x") if where == "under-a-file" else tmp_path / ("n" * 300)
    expected = "/dev/null is a file, not a folder" if where == "under-a-file" else "is longer than 255 bytes"
    code, output = simulate(tiles, tmp_path, out)
    assert code == 1 and expected in output and "Traceback" not in output and "round 0" not in output, output
    bench = CliRunner().invoke(cli, ["benchmark", "--data", str(tiles), "--strategies", "random", "--seeds", "0",
                                     "--cache-dir", str(tmp_path / "cache"), *FAST[:-1], "--out", str(out)])  # fmt: skip
    assert bench.exit_code == 1 and expected in bench.output, bench.output
    run = finished_run(tiles, tmp_path)
    ref = CliRunner().invoke(cli, ["supervised", "--run", str(run), "--out", str(out)])
    assert ref.exit_code == 1 and expected in ref.output and "supervised reference:" not in ref.output, (
        ref.output
    )


def test_supervised_never_writes_into_a_folder_of_someone_else(tiles: Path, tmp_path: Path):
    run = finished_run(tiles, tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.json").write_text('{"precious": true}')
    result = CliRunner().invoke(cli, ["supervised", "--run", str(run), "--out", str(mine)])
    assert result.exit_code == 1 and "its metrics.json is not a supervised reference's" in result.output
    assert (mine / "metrics.json").read_text() == '{"precious": true}'
    (mine / "metrics.json").unlink()
    (mine / "notes.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["supervised", "--run", str(run), "--out", str(mine)])
    assert (
        result.exit_code == 1
        and "holds files that are not a supervised reference (notes.txt)" in result.output
    )


def test_impossible_cache_and_data_folders_are_one_line(tiles: Path, tmp_path: Path):
    """The same class for the other folders the commands write: --cache-dir and data --root."""
    long = tmp_path / ("c" * 300)
    code, output = simulate(tiles, tmp_path, tmp_path / "o", "--cache-dir", str(long))
    assert code == 1 and "cannot create the cache folder" in output and "longer than 255 bytes" in output
    result = CliRunner().invoke(cli, ["data", "download", "kather2016", "--root", "/dev/null/x"])
    assert result.exit_code == 1, result.output
    assert "cannot create the data folder /dev/null/x: /dev/null is a file, not a folder" in result.output
