"""What a hostile probe found in the project commands: outputs over the project or its images,
held-out labels changed by an import, hold-out rows without a label, a file swapped with its
mtime restored, a fully labelled pool, init's strategy and budget, a FIFO in place of an image,
and a damaged checkpoint."""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import asdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from unisal.app.export import latest_model
from unisal.app.project import check_images, init_project, open_project
from unisal.app.rounds import ProjectSettings
from unisal.app.store import ProjectError
from unisal.cli.main import cli

CLASSES = ["red", "green", "blue"]


def settings(tmp_path: Path, budget: int = 3) -> dict[str, object]:
    config = {
        "data": {"image_size": 32, "cache_dir": str(tmp_path / "cache")},
        "train": {"epochs": 2, "steps_per_epoch": 2, "batch_size": 8, "eval_every": 1},
    }
    return asdict(ProjectSettings(budget=budget, config=config))


@pytest.fixture
def tiles(make_image_folder) -> Path:
    return make_image_folder(classes={"red": 3, "green": 3, "blue": 3}, size=32)


@pytest.fixture
def project(tiles: Path, tmp_path: Path) -> Path:
    (tmp_path / "test.csv").write_text("path,label\nred/red_0.png,red\n")
    folder = tmp_path / "p"
    init_project(
        folder, images=tiles, classes=CLASSES, test_csv=tmp_path / "test.csv", settings=settings(tmp_path)
    )
    return folder


def within(seconds: float, call) -> object:
    """``call()``'s result, or a test failure if it has not returned after ``seconds`` (a hang)."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as error:  # noqa: BLE001 - handed back to the test
            box["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "hangs"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]


# ---- 1: outputs over the project or its data
def test_outputs_over_the_project_or_its_images_are_refused(project: Path, tiles: Path, tmp_path: Path):
    db, image = project / "project.db", tiles / "red" / "red_1.png"
    (project / "rounds").mkdir()  # as after the first trained round
    before = (db.read_bytes(), image.read_bytes())
    runner = CliRunner()
    cases = {
        db: f"--out {db} is the project's database {db}; write it elsewhere",
        project / "project.db-wal": f"--out {project / 'project.db-wal'} is the project's database "
        f"{project / 'project.db-wal'}; write it elsewhere",
        project / "rounds" / "x.pt2": f"--out {project / 'rounds' / 'x.pt2'} is inside the project's "
        f"rounds folder {project / 'rounds'}; write it elsewhere",
        image: f"--out {image} is inside the project's image folder {tiles}; write it elsewhere",
        tiles / "new.csv": f"--out {tiles / 'new.csv'} is inside the project's image folder {tiles}; "
        "write it elsewhere",
    }
    for out, message in cases.items():
        for args in (
            ["project", "export", str(project), "--out", str(out)],
            ["predict", "--project", str(project), "--images", str(tiles), "--out", str(out)],
            ["export-model", "--project", str(project), "--out", str(out)],
        ):
            result = runner.invoke(cli, args)
            assert (result.exit_code, result.output) == (1, f"Error: {message}\n"), args
    assert (db.read_bytes(), image.read_bytes()) == before


def test_predict_refuses_to_write_among_the_images_it_predicts(project: Path, make_image_folder):
    other = make_image_folder(classes={"x": 2}, size=32)
    out = other / "x" / "x_0.png"
    result = CliRunner().invoke(
        cli, ["predict", "--project", str(project), "--images", str(other), "--out", str(out)]
    )
    assert result.output == f"Error: --out {out} is inside the --images folder {other}; write it elsewhere\n"


def test_a_device_output_is_refused_by_every_command(project: Path, tiles: Path, device_node: Path):
    device = str(device_node)
    message = f"Error: --out {device} is not a regular file (a device); name a new file or a regular file\n"
    for args in (
        ["project", "export", str(project), "--out", device],
        ["predict", "--project", str(project), "--images", str(tiles), "--out", device],
        ["export-model", "--project", str(project), "--out", device],
    ):
        result = CliRunner().invoke(cli, args)
        assert (result.exit_code, result.output) == (1, message)


# ---- 2: held-out labels are fixed
def test_an_import_that_changes_a_held_out_label_imports_nothing(project: Path, tmp_path: Path):
    store = open_project(project)
    before = store.labels()
    (tmp_path / "imp.csv").write_text("path,label\nred/red_0.png,blue\ngreen/green_0.png,green\n")
    result = CliRunner().invoke(cli, ["project", "import", str(project), str(tmp_path / "imp.csv")])
    assert (result.exit_code, result.output) == (
        1,
        "Error: nothing imported: 1 held-out test image(s) would change label, e.g. red/red_0.png "
        "(held out as red, the file says blue): the hold-out is fixed at `project init`\n",
    )
    assert store.labels() == before
    (tmp_path / "same.csv").write_text("path,label\nred/red_0.png,red\ngreen/green_0.png,green\n")
    result = CliRunner().invoke(cli, ["project", "import", str(project), str(tmp_path / "same.csv")])
    assert result.output == "1 labels imported\n"


# ---- 3: a listed image without a label
@pytest.mark.parametrize("option", ["--test", "--labels"])
def test_a_listed_image_without_a_label_is_an_error(tiles: Path, tmp_path: Path, option: str):
    (tmp_path / "l.csv").write_text("path,label\nred/red_0.png,red\nblue/blue_0.png,\ngreen/green_1.png, \n")
    result = CliRunner().invoke(
        cli,
        ["project", "init", str(tmp_path / "p"), "--images", str(tiles), "--classes", "red,green,blue",
         option, str(tmp_path / "l.csv")],
    )  # fmt: skip
    assert (result.exit_code, result.output) == (
        1,
        f"Error: {tmp_path / 'l.csv'}: 2 row(s) without a label, e.g. blue/blue_0.png, green/green_1.png: "
        "give every listed image a label, or leave it out\n",
    )
    assert not (tmp_path / "p").exists()


# ---- 4: same size, mtime put back
def test_a_file_swapped_with_its_mtime_restored_is_found(project: Path, tiles: Path):
    target = tiles / "red" / "red_1.png"
    stat = target.stat()
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # other bytes, same size
    (tiles / "swap.tmp").write_bytes(bytes(data))
    shutil.copyfile(tiles / "swap.tmp", target)  # as `cp other.png red_1.png`
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as `touch -r orig red_1.png`
    assert (target.stat().st_size, target.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    with pytest.raises(ProjectError) as excinfo:
        check_images(open_project(project))
    assert str(excinfo.value) == (
        "1 image(s) changed since `project init` (same path, other bytes), e.g. red/red_1.png: "
        "put the original back or start a new project"
    )


# ---- 5: a fully labelled pool still trains
def test_a_fully_labelled_project_trains_queues_nothing_and_predicts(tiles: Path, tmp_path: Path):
    (tmp_path / "all.csv").write_text(
        "path,label\n" + "".join(f"{c}/{c}_{i}.png,{c}\n" for c in CLASSES for i in range(3))
    )
    folder = tmp_path / "p"
    init_project(
        folder, images=tiles, classes=CLASSES, labels_csv=tmp_path / "all.csv", settings=settings(tmp_path)
    )
    result = CliRunner().invoke(cli, ["project", "round", str(folder)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].endswith("; every pool image is labelled: nothing queued")
    record = open_project(folder).rounds()[-1]
    assert record["status"] == "done" and record["checkpoint"] == "rounds/round_1.pt"
    assert record["metrics"]["n_labels"] == 9 and record["metrics"]["queued"] == 0
    assert open_project(folder).queue_length() == 0
    out = tmp_path / "pred.csv"
    result = CliRunner().invoke(
        cli, ["predict", "--project", str(folder), "--images", str(tiles), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 10


# ---- 6: init's strategy, budget, learner and preset
def test_init_stores_strategy_budget_learner_and_preset(tiles: Path, tmp_path: Path):
    base = ["project", "init", str(tmp_path / "p"), "--images", str(tiles), "--classes", "red,green,blue"]
    result = CliRunner().invoke(
        cli, [*base, "--strategy", "entropy", "--budget", "7", "--learner", "finetune", "--preset", "cpu"]
    )
    assert result.exit_code == 0, result.output
    stored = open_project(tmp_path / "p").settings()
    assert (stored["strategy"], stored["budget"], stored["preset"]) == ("entropy", 7, "cpu")
    assert stored["config"] == {"learner": {"name": "finetune"}}
    bad = CliRunner().invoke(cli, [*base[:2], str(tmp_path / "q"), *base[3:], "--strategy", "nope"])
    assert bad.exit_code == 2 and "nope" in bad.output and not (tmp_path / "q").exists()
    bad = CliRunner().invoke(cli, [*base[:2], str(tmp_path / "q"), *base[3:], "--budget", "0"])
    assert bad.exit_code == 2 and "--budget" in bad.output and not (tmp_path / "q").exists()


# ---- 7: a FIFO in place of an image
def test_a_fifo_in_place_of_an_image_is_an_error_not_a_hang(project: Path, tiles: Path, tmp_path: Path):
    image = tiles / "green" / "green_2.png"
    image.unlink()
    os.mkfifo(image)
    with pytest.raises(ProjectError) as excinfo:
        within(20, lambda: check_images(open_project(project)))
    assert str(excinfo.value) == (
        "1 image(s) cannot be read, e.g. green/green_2.png (not a regular file): "
        "put the original back or start a new project"
    )
    store = within(20, lambda: init_project(tmp_path / "q", images=tiles, classes=None, fmt="folder"))
    assert len(store.images()) == 8  # init lists regular files only: the FIFO is no image


# ---- 8: a damaged checkpoint
@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04 truncated zip"])
def test_a_damaged_checkpoint_is_a_one_line_error(project: Path, tiles: Path, tmp_path: Path, content: bytes):
    store = open_project(project)
    round_id = store.start_round(settings(tmp_path))
    (project / "rounds").mkdir()
    (project / "rounds" / "round_1.pt").write_bytes(content)
    store.finish_round(round_id, metrics={}, checkpoint="rounds/round_1.pt")
    message = (
        f"cannot read the model of round 1 ({project / 'rounds' / 'round_1.pt'}): the file is damaged "
        f"or not a checkpoint; run `unisal project round {project}` again to train a new one"
    )
    with pytest.raises(ProjectError) as excinfo:
        latest_model(project)
    assert str(excinfo.value) == message
    result = CliRunner().invoke(
        cli, ["export-model", "--project", str(project), "--out", str(tmp_path / "m.pt2")]
    )
    assert (result.exit_code, result.output) == (1, f"Error: {message}\n")
