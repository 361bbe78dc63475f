"""A project's images and database as they are on disk: images replaced or removed after init
stop a round before any work; an old (version 1) database is migrated; an empty, foreign or
non-SQLite ``project.db`` is refused, never re-created."""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import asdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from unisal.app.project import check_images, file_stamp, init_project, open_project, sha256_of
from unisal.app.rounds import ProjectSettings, run_round
from unisal.app.schema import _SCHEMA_V1, SCHEMA_VERSION
from unisal.app.store import ProjectError, ProjectStore
from unisal.cli.main import cli

CLASSES = ["red", "green", "blue"]


def settings(tmp_path: Path) -> dict[str, object]:
    config = {"data": {"image_size": 16, "cache_dir": str(tmp_path / "cache")}}
    return asdict(ProjectSettings(budget=3, config=config))


@pytest.fixture
def project(make_image_folder, tmp_path: Path) -> tuple[Path, Path]:
    tiles = make_image_folder(classes={"red": 3, "green": 3, "blue": 3}, size=16)
    folder = tmp_path / "p"
    init_project(folder, images=tiles, classes=CLASSES, settings=settings(tmp_path))
    return folder, tiles


def test_a_replaced_or_missing_image_stops_the_round_before_any_work(project: tuple[Path, Path]):
    folder, tiles = project
    shutil.copy(tiles / "green" / "green_0.png", tiles / "red" / "red_0.png")  # same path, other bytes
    (tiles / "blue" / "blue_2.png").unlink()
    with pytest.raises(ProjectError) as excinfo:
        run_round(folder)
    assert str(excinfo.value) == (
        "1 image(s) changed since `project init` (same path, other bytes), e.g. red/red_0.png; "
        "1 image(s) missing, e.g. blue/blue_2.png: put the original back or start a new project"
    )
    store = open_project(folder)
    assert store.rounds() == [] and store.queue_length() == 0  # nothing ran, nothing recorded
    result = CliRunner().invoke(cli, ["project", "round", str(folder)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "1 image(s) changed since `project init`" in result.output


def test_only_files_whose_size_or_mtime_differ_are_hashed_again(
    project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
):
    folder, tiles = project
    store = open_project(folder)
    assert all(r["mtime_ns"] for r in store.images())
    touched = tiles / "red" / "red_1.png"
    os.utime(touched, ns=(1_000_000_000, 1_000_000_000))  # new mtime, same bytes
    hashed: list[str] = []

    import unisal.app.files as project_module

    def counting(path: str | Path) -> tuple[str, int]:
        hashed.append(Path(path).name)
        return sha256_of(path)

    monkeypatch.setattr(project_module, "sha256_of", counting)
    check_images(store)
    assert hashed == ["red_1.png"]
    row = next(r for r in store.images() if r["path"] == "red/red_1.png")
    assert row["mtime_ns"] == file_stamp(os.stat(touched))  # the new stamp: not hashed again next time
    hashed.clear()
    check_images(store)
    assert hashed == []


def version_1_database(path: Path, tiles: Path) -> None:
    """A project database exactly as unisal wrote it before schema version 2 (no mtimes)."""
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA_V1)
    conn.executemany("INSERT INTO classes VALUES (?, ?)", list(enumerate(CLASSES)))
    conn.execute(
        "INSERT INTO meta VALUES ('settings', ?)",
        (f'{{"image_root": "{tiles}", "config": {{"data": {{"image_size": 16, '
         f'"cache_dir": "{path.parent.parent / "cache"}"}}}}, "budget": 3}}',),
    )  # fmt: skip
    for k, image in enumerate(sorted(tiles.rglob("*.png"))):
        digest, size = sha256_of(image)
        conn.execute(
            "INSERT INTO images (path, sha256, bytes, grp) VALUES (?, ?, ?, ?)",
            (image.relative_to(tiles).as_posix(), digest, size, f"g{k}"),
        )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


def test_a_version_1_database_is_migrated_and_still_works(make_image_folder, tmp_path: Path):
    tiles = make_image_folder(classes={"red": 3, "green": 3, "blue": 3}, size=16)
    folder = tmp_path / "old"
    folder.mkdir()
    version_1_database(folder / "project.db", tiles)
    store = open_project(folder)
    assert store.version == SCHEMA_VERSION  # the latest, whichever it is
    assert [r["mtime_ns"] for r in store.images()] == [None] * 9
    record = run_round(folder)
    assert record["status"] == "done" and store.queue_length() == 3
    assert all(r["mtime_ns"] for r in store.images())  # the check recorded them
    shutil.copy(tiles / "green" / "green_0.png", tiles / "red" / "red_2.png")
    with pytest.raises(ProjectError, match=r"^1 image\(s\) changed since `project init`.*red/red_2.png"):
        run_round(folder)


def test_predict_does_not_check_the_project_images(project: tuple[Path, Path]):
    """predict and export-model use the model, not the project's images: a changed image does
    not stop them (they get as far as saying there is no trained round yet)."""
    folder, tiles = project
    shutil.copy(tiles / "green" / "green_0.png", tiles / "red" / "red_0.png")
    result = CliRunner().invoke(
        cli, ["predict", "--project", str(folder), "--images", str(tiles), "--out", str(folder / "x.csv")]
    )
    assert result.exit_code == 1 and "no trained round yet" in result.output


DAMAGED = (
    "{} is empty or not a unisal project database; restore it from a backup or create a project "
    "with `unisal project init`"
)


def foreign_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(b""),
        lambda p: p.write_bytes(b"not a database at all " * 200),
        lambda p: (p.unlink(), foreign_sqlite(p)),
        lambda p: (p.unlink(), sqlite3.connect(p).execute("CREATE TABLE t (x)").connection.commit()),
    ],
    ids=["zero-bytes", "not-sqlite", "another-program-version-1", "another-program-version-0"],
)
def test_a_damaged_project_db_is_refused_and_never_recreated(project: tuple[Path, Path], damage):
    folder, _ = project
    db = folder / "project.db"
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    damage(db)
    before = db.read_bytes()
    with pytest.raises(ProjectError) as excinfo:
        open_project(folder)
    assert str(excinfo.value) == DAMAGED.format(db)
    with pytest.raises(ProjectError):
        ProjectStore.open(db)
    for command in (["status", str(folder)], ["round", str(folder)],
                    ["export", str(folder), "--out", str(folder / "x.csv")]):  # fmt: skip
        result = CliRunner().invoke(cli, ["project", *command])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert result.output == f"Error: {DAMAGED.format(db)}\n"
    assert db.read_bytes() == before  # nothing was written to it
    assert not (folder / "x.csv").exists()
