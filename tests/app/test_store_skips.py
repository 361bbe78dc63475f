"""Skips are personal: a skip releases only the skipper's own lease, and every annotator who
skipped an item is remembered (not only the last one)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from unisal.app.store import MIGRATIONS, SCHEMA_VERSION, ProjectStore

CLASSES = ["a", "b"]


@pytest.fixture
def store(tmp_path: Path) -> ProjectStore:
    s = ProjectStore.create(tmp_path / "project.db", classes=CLASSES, settings={})
    s.add_images((f"i{i}.png", f"{i:064x}", 1, f"g{i}", "train", None) for i in range(1, 4))
    s.replace_queue(None, [{"image_id": i, "reason": "r"} for i in (1, 2, 3)])
    return s


def ids(items: list) -> list[int]:  # type: ignore[type-arg]
    return [item.image_id for item in items]


def test_a_skip_never_releases_another_annotators_lease(store: ProjectStore):
    assert ids(store.lease("alice", 1)) == [1]
    store.skip(1, "bob")  # bob skips what alice holds (an old page, a stale tab)
    assert ids(store.lease("carol", 3)) == [2, 3]  # image 1 stays alice's alone
    assert store.conn.execute("SELECT lease_owner FROM queue WHERE image_id = 1").fetchone()[0] == "alice"
    assert ids(store.lease("alice", 3)) == [1]  # and alice gets it back


def test_every_skipper_is_remembered(store: ProjectStore):
    store.skip(1, "alice")
    store.skip(1, "bob")  # a later skip by someone else
    assert ids(store.lease("alice", 3)) == [2, 3]  # alice is not offered image 1 again
    assert ids(store.lease("bob", 3)) == []
    assert ids(store.lease("carol", 3)) == [1]
    rows = store.conn.execute("SELECT image_id, annotator FROM skips ORDER BY annotator").fetchall()
    assert [tuple(r) for r in rows] == [(1, "alice"), (1, "bob")]


def test_a_skip_releases_the_skippers_own_lease(store: ProjectStore):
    assert ids(store.lease("alice", 1)) == [1]
    store.skip(1, "alice")
    assert ids(store.lease("bob", 1)) == [1]


def test_a_new_queue_forgets_the_skips(store: ProjectStore):
    store.skip(1, "alice")
    store.replace_queue(None, [{"image_id": 1, "reason": "new round"}])
    assert ids(store.lease("alice", 3)) == [1]


def test_the_migration_keeps_a_version_2_databases_skip(tmp_path: Path):
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    for version in (1, 2):
        conn.executescript(MIGRATIONS[version])
    conn.execute("PRAGMA user_version = 2")
    conn.execute("INSERT INTO classes VALUES (0, 'a'), (1, 'b')")
    conn.execute("INSERT INTO meta VALUES ('settings', '{}')")
    conn.execute("INSERT INTO images (id, path, sha256, bytes, grp) VALUES (1, 'i1.png', 'x', 1, 'g')")
    conn.execute("INSERT INTO queue (image_id, position, reason, skipped_by) VALUES (1, 0, 'r', 'alice')")
    conn.commit()
    conn.close()
    store = ProjectStore.open(db)
    assert store.version == SCHEMA_VERSION
    assert ids(store.lease("alice", 1)) == [] and ids(store.lease("bob", 1)) == [1]


def test_the_version_4_migration_renames_the_training_split_and_keeps_every_row(tmp_path: Path):
    """'pool' images become 'train' ones in a rebuilt table: ids, labels, the audit trail, the
    queue and the held-out images stay, and foreign keys are enforced again afterwards."""
    db = tmp_path / "v3.db"
    conn = sqlite3.connect(db)
    for version in (1, 2, 3):
        conn.executescript(MIGRATIONS[version])
    conn.execute("PRAGMA user_version = 3")
    conn.execute("INSERT INTO classes VALUES (0, 'a'), (1, 'b')")
    conn.execute("INSERT INTO meta VALUES ('settings', '{}')")
    conn.executemany(
        "INSERT INTO images (id, path, sha256, bytes, grp, split, mtime_ns) VALUES (?, ?, 'x', 1, ?, ?, 7)",
        [(1, "i1.png", "g1", "pool"), (2, "i2.png", "g2", "pool"), (5, "t5.png", "g5", "test")],
    )
    conn.execute("INSERT INTO labels VALUES (2, 1, 'alice', 't')")
    conn.execute(
        "INSERT INTO label_events (image_id, new_class_id, annotator, action, at) VALUES (2, 1, 'alice', 'label', 't')"
    )
    conn.execute("INSERT INTO queue (image_id, position, reason) VALUES (1, 0, 'r')")
    conn.commit()
    conn.close()
    store = ProjectStore.open(db)
    assert store.version == SCHEMA_VERSION >= 4
    assert [(r["id"], r["path"], r["split"], r["mtime_ns"]) for r in store.images()] == [
        (1, "i1.png", "train", 7),
        (2, "i2.png", "train", 7),
        (5, "t5.png", "test", 7),
    ]
    assert store.labels() == {"i2.png": ("b", "alice", "t")}
    assert ids(store.lease("bob", 5)) == [1]  # the queue kept its image; a test image is never queued
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with pytest.raises(sqlite3.IntegrityError):
        store.conn.execute("INSERT INTO labels VALUES (99, 0, 'x', 't')")  # no image 99
