"""The project database: labels, audit, disagreements, undo, all-or-nothing import, leases, rounds."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from unisal.app.store import SCHEMA_VERSION, ProjectError, ProjectStore
from unisal.data.catalogue import UnknownClassError

CLASSES = ["TUM", "STR", "NORM"]


@pytest.fixture
def store(tmp_path: Path) -> ProjectStore:
    s = ProjectStore.create(tmp_path / "project.db", classes=CLASSES, settings={"strategy": "unisal"})
    s.add_images((f"img_{i}.png", f"{i:064x}", 100 + i, f"g{i // 2}", "train", None) for i in range(30))
    return s


def test_create_open_and_refuse_a_newer_schema(store: ProjectStore, tmp_path: Path):
    assert store.version == SCHEMA_VERSION and store.class_names() == CLASSES
    assert store.settings() == {"strategy": "unisal"}
    again = ProjectStore.open(tmp_path / "project.db")
    assert len(again.images()) == 30
    with pytest.raises(ProjectError, match="already exists"):
        ProjectStore.create(tmp_path / "project.db", classes=CLASSES, settings={})
    with pytest.raises(ProjectError, match="two or more distinct"):
        ProjectStore.create(tmp_path / "other.db", classes=["A", "A"], settings={})
    store.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ProjectError, match="newer than this unisal"):
        ProjectStore.open(tmp_path / "project.db")
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(ProjectError, match="junk.db is empty or not a unisal project database"):
        ProjectStore.open(tmp_path / "junk.db")


def test_labels_are_audited_and_a_double_submit_changes_nothing(store: ProjectStore):
    assert store.set_label(1, "TUM", "ann").status == "labelled"
    assert store.set_label(1, "TUM", "ann").status == "unchanged"
    assert store.set_label(1, "STR", "ann").status == "relabelled"
    assert store.labels()["img_0.png"][:2] == ("STR", "ann")
    assert [(r["old"], r["new"], r["action"]) for r in store.history()] == [
        (None, "TUM", "label"),
        ("TUM", "STR", "relabel"),
    ]
    with pytest.raises(UnknownClassError, match="'TUMOUR' is not one of the classes"):
        store.set_label(2, "TUMOUR", "ann")
    with pytest.raises(ProjectError, match="no image with id 999"):
        store.set_label(999, "TUM", "ann")


def test_a_second_annotator_never_overwrites_silently(store: ProjectStore):
    store.set_label(3, "TUM", "alice")
    result = store.set_label(3, "NORM", "bob")
    assert result.status == "disagreement"
    assert store.labels()["img_2.png"][:2] == ("TUM", "alice")
    assert [(d["path"], d["label"], d["annotator"]) for d in store.disagreements()] == [
        ("img_2.png", "NORM", "bob")
    ]
    assert store.set_label(3, "TUM", "bob").status == "unchanged"  # agreeing is not a disagreement
    assert store.counts()["disagreements"] == 1


def test_undo_restores_the_previous_label_in_order(store: ProjectStore):
    store.set_label(4, "TUM", "ann")
    store.set_label(5, "STR", "ann")
    store.set_label(5, "NORM", "ann")
    assert store.undo("ann").label == "STR"  # image 5 (img_4.png) back to STR
    assert store.labels()["img_4.png"][0] == "STR" and store.labels()["img_3.png"][0] == "TUM"
    assert store.undo("ann").label == ""  # image 5's first label undone: unlabelled
    assert "img_4.png" not in store.labels()
    assert store.undo("ann").image_id == 4
    assert store.undo("ann") is None and store.labels() == {}
    assert [r["action"] for r in store.history()][-3:] == ["undo", "undo", "undo"]


def test_import_is_all_or_nothing_and_names_the_offenders(store: ProjectStore):
    store.set_label(1, "TUM", "ann")
    bad = [
        ("img_0.png", "STR"),
        ("img_1.png", "XYZ"),
        ("nope.png", "TUM"),
        ("img_2.png", "TUM"),
        ("img_2.png", "STR"),
    ]
    with pytest.raises(ProjectError) as excinfo:
        store.import_labels(bad, "importer")
    message = str(excinfo.value)
    assert message.startswith("nothing imported:")
    assert (
        "1 unknown image(s), e.g. nope.png" in message
        and "'XYZ'" in message
        and "two different labels, e.g. img_2.png" in message
    )
    assert (
        store.labels() == {"img_0.png": store.labels()["img_0.png"]}
        and store.labels()["img_0.png"][0] == "TUM"
    )
    assert (
        store.import_labels([("img_0.png", "STR"), ("img_1.png", "NORM"), ("img_1.png", "NORM")], "importer")
        == 2
    )
    assert {p: v[0] for p, v in store.labels().items()} == {"img_0.png": "STR", "img_1.png": "NORM"}


def test_leases_hand_each_item_to_one_annotator(store: ProjectStore):
    store.replace_queue(
        None,
        [{"image_id": i, "reason": f"r{i}", "guess": "TUM", "guess_confidence": 0.6} for i in range(1, 21)],
    )
    got: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        item = store.lease_next(name)
        assert item is not None
        with lock:
            got.append(item.image_id)

    threads = [threading.Thread(target=worker, args=(f"ann{k}",)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 21))  # 20 annotators, 20 different items
    assert store.lease_next("ann21") is None  # everything is leased
    first = store.lease_next("ann0")  # an annotator gets their own lease back
    assert first is not None and first.guess == "TUM" and first.reason.startswith("r")


def test_leases_expire_skips_are_personal_and_labels_clear_the_queue(store: ProjectStore):
    store.replace_queue(None, [{"image_id": 1, "reason": "a"}, {"image_id": 2, "reason": "b"}])
    assert store.lease_next("alice", lease_seconds=-1).image_id == 1  # type: ignore[union-attr]
    assert store.lease_next("bob").image_id == 1  # type: ignore[union-attr]  # alice's lease ran out
    store.skip(1, "bob")
    assert store.lease_next("bob").image_id == 2  # type: ignore[union-attr]
    assert store.lease_next("carol").image_id == 1  # type: ignore[union-attr]
    store.set_label(1, "TUM", "carol")
    store.set_label(2, "STR", "bob")
    assert store.queue_length() == 0 and store.lease_next("dave") is None


def test_rounds_run_one_at_a_time_and_keep_their_outcome(store: ProjectStore):
    store.set_label(1, "TUM", "ann")
    first = store.start_round({"strategy": "unisal"})
    with pytest.raises(ProjectError, match="already running"):
        store.start_round({})
    store.fail_round(first, "out of memory")
    second = store.start_round({"strategy": "unisal"})
    store.finish_round(second, metrics={"val_accuracy": 0.9}, checkpoint="rounds/2.pt")
    rounds = store.rounds()
    assert [(r["status"], r["n_labels"]) for r in rounds] == [("failed", 1), ("done", 1)]
    assert rounds[0]["error"] == "out of memory" and rounds[1]["metrics"] == {"val_accuracy": 0.9}


def test_counts(store: ProjectStore):
    store.set_label(1, "TUM", "a")
    store.set_label(2, "TUM", "a")
    store.set_label(3, "NORM", "a")
    counts = store.counts()
    assert (
        counts["per_class"] == {"TUM": 2, "STR": 0, "NORM": 1}
        and counts["labelled"] == 3
        and counts["images"] == 30
    )


def test_the_database_is_in_wal_mode_with_foreign_keys(store: ProjectStore, tmp_path: Path):
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(sqlite3.IntegrityError), store.transaction() as conn:
        conn.execute("INSERT INTO labels VALUES (12345, 0, 'x', 'now')")


def test_a_finished_round_is_never_marked_failed_afterwards(store: ProjectStore):
    round_id = store.start_round({})
    store.finish_round(round_id, metrics={}, checkpoint="")
    store.fail_round(round_id, "stopped by SIGTERM")  # an interruption after the last write
    assert [(r["status"], r["error"]) for r in store.rounds()] == [("done", None)]
