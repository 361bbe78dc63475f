"""Undo and review together: undoing the kept label of a disputed image leaves the case open with
no current label (offered only real classes); undoing a resolution gives the label back to the
annotator who had it and reopens the cases the resolution closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from unisal.app.store import ProjectError, ProjectStore

CLASSES = ["red", "green", "blue"]


@pytest.fixture
def store(tmp_path: Path) -> ProjectStore:
    s = ProjectStore.create(tmp_path / "project.db", classes=CLASSES, settings={})
    s.add_images((f"i{i}.png", f"{i:064x}", 1, f"g{i}", "train", None) for i in range(1, 4))
    return s


def cases(store: ProjectStore) -> list[tuple[str | None, str | None, str, str]]:
    return [(d["current"], d["current_annotator"], d["label"], d["annotator"]) for d in store.disagreements()]


def test_undoing_the_kept_label_of_a_disputed_image_keeps_the_case_open(store: ProjectStore):
    store.set_label(1, "red", "alice")
    store.set_label(1, "blue", "bob")
    assert store.undo("alice").label == ""  # type: ignore[union-attr]
    assert cases(store) == [(None, None, "blue", "bob")]  # no label now; bob's still waits
    store.resolve(store.disagreements()[0]["id"], "blue", "carol")
    assert store.labels()["i1.png"][:2] == ("blue", "carol") and cases(store) == []


def test_undoing_a_resolution_restores_the_label_its_annotator_and_the_cases(store: ProjectStore):
    store.set_label(1, "red", "alice")
    store.set_label(1, "blue", "bob")
    store.set_label(1, "green", "dan")
    before = store.labels()["i1.png"]
    store.resolve(store.disagreements()[0]["id"], "blue", "carol")
    assert store.labels()["i1.png"][:2] == ("blue", "carol") and cases(store) == []
    result = store.undo("carol")
    assert (result.status, result.image_id, result.label) == ("undone", 1, "red")  # type: ignore[union-attr]
    assert store.labels()["i1.png"] == before  # alice's label, her time
    assert cases(store) == [("red", "alice", "blue", "bob"), ("red", "alice", "green", "dan")]
    assert [(r["old"], r["new"], r["annotator"], r["action"]) for r in store.history()][-2:] == [
        ("red", "blue", "carol", "relabel"),
        ("blue", "red", "carol", "undo"),
    ]
    assert store.undo("carol") is None  # one resolution, undone once


def test_undoing_a_resolution_that_kept_the_label_reopens_the_cases(store: ProjectStore):
    store.set_label(2, "red", "alice")
    store.set_label(2, "blue", "bob")
    store.resolve(store.disagreements()[0]["id"], "red", "carol")  # alice was right: no change
    assert store.undo("carol").label == "red"  # type: ignore[union-attr]
    assert store.labels()["i2.png"][:2] == ("red", "alice")
    assert cases(store) == [("red", "alice", "blue", "bob")]


def test_a_resolution_relabelled_since_is_not_undone(store: ProjectStore):
    store.set_label(1, "red", "alice")
    store.set_label(1, "blue", "bob")
    store.resolve(store.disagreements()[0]["id"], "blue", "carol")
    store.import_labels([("i1.png", "green")], "import")
    with pytest.raises(ProjectError, match="the latest label was changed since; nothing was undone"):
        store.undo("carol")
    assert store.labels()["i1.png"][:2] == ("green", "import") and cases(store) == []
