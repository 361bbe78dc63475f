"""A project database whose stored JSON (the settings, a round's settings or metrics) was damaged
is a one-line ProjectError naming the database and the damaged value, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from unisal.app.store import ProjectError, ProjectStore

CLASSES = ["a", "b"]


@pytest.fixture
def store(tmp_path: Path) -> ProjectStore:
    return ProjectStore.create(tmp_path / "project.db", classes=CLASSES, settings={"image_root": "/x"})


@pytest.mark.parametrize("value", ["{not json", "[1, 2]", '"text"'])
def test_damaged_settings_are_a_one_line_error(store: ProjectStore, value: str):
    store.conn.execute("UPDATE meta SET value = ? WHERE key = 'settings'", (value,))
    with pytest.raises(ProjectError) as excinfo:
        store.settings()
    assert str(excinfo.value) == (
        f"{store.path} is damaged: its settings are not a JSON object; restore it from a backup"
    )


@pytest.mark.parametrize("column", ["settings", "metrics"])
def test_a_damaged_round_record_is_a_one_line_error(store: ProjectStore, column: str):
    round_id = store.start_round({"epochs": 1})
    store.finish_round(round_id, metrics={"accuracy": 0.5}, checkpoint="c.pt")
    store.conn.execute(f"UPDATE rounds SET {column} = '{{oops' WHERE id = ?", (round_id,))
    with pytest.raises(ProjectError) as excinfo:
        store.rounds()
    assert str(excinfo.value) == (
        f"{store.path} is damaged: the {column} of round {round_id} are not JSON; restore it from a backup"
    )
