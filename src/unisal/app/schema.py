"""The project database's schema (versioned, with its migrations), the checks that refuse a
file that is not one, and the small records the store hands out."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from unisal.errors import HeldOutError, ProjectError

SCHEMA_VERSION = 5
DB_NAME = "project.db"
ROUND_LOCK_NAME = ".round.lock"  # held (fcntl.flock) by whoever runs a round, for the whole round
# why a round marked running that nobody holds the lock of is recorded as failed
ROUND_KILLED = "the process running it ended without finishing it (killed?)"
# the tables every version has: a database without them is some other program's
_TABLES = {"meta", "classes", "images", "labels", "label_events", "disagreements", "rounds", "queue"}

_SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE classes (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,          -- relative to the project's image root
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    grp TEXT NOT NULL,                  -- images of one group stay in one split
    split TEXT NOT NULL DEFAULT 'pool' CHECK (split IN ('pool', 'test'))
);
CREATE TABLE labels (
    image_id INTEGER PRIMARY KEY REFERENCES images(id),
    class_id INTEGER NOT NULL REFERENCES classes(id),
    annotator TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE label_events (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images(id),
    old_class_id INTEGER REFERENCES classes(id),
    new_class_id INTEGER REFERENCES classes(id),
    annotator TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('label', 'relabel', 'undo', 'import')),
    at TEXT NOT NULL,
    undone INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX label_events_by_annotator ON label_events(annotator, id);
CREATE TABLE disagreements (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images(id),
    class_id INTEGER NOT NULL REFERENCES classes(id),
    annotator TEXT NOT NULL,
    at TEXT NOT NULL,
    resolved INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE rounds (
    id INTEGER PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    started_at TEXT NOT NULL,
    finished_at TEXT,
    n_labels INTEGER NOT NULL,
    settings TEXT NOT NULL,
    metrics TEXT,
    checkpoint TEXT,
    error TEXT
);
CREATE TABLE queue (
    image_id INTEGER PRIMARY KEY REFERENCES images(id),
    round_id INTEGER REFERENCES rounds(id),
    position INTEGER NOT NULL,
    reason TEXT NOT NULL,
    score REAL,
    guess_class_id INTEGER REFERENCES classes(id),
    guess_confidence REAL,
    lease_owner TEXT,
    lease_until TEXT,
    skipped_by TEXT
);
"""

# Version 2: each image's modification time (ns) when its hash was last checked, so that a
# round re-hashes only the files whose size or mtime changed (NULL: never checked, hash it).
_SCHEMA_V2 = """
ALTER TABLE images ADD COLUMN mtime_ns INTEGER;
"""

# Version 3: every annotator who skipped a queued item (queue.skipped_by held only the last one,
# so an earlier skipper was offered it again); the old column is copied here and no longer used.
# And each resolution of a disagreement, so that undoing one gives the label back to the
# annotator who had it and reopens the cases it closed.
_SCHEMA_V3 = """
CREATE TABLE skips (
    image_id INTEGER NOT NULL REFERENCES queue(image_id) ON DELETE CASCADE,
    annotator TEXT NOT NULL,
    PRIMARY KEY (image_id, annotator)
);
INSERT INTO skips (image_id, annotator) SELECT image_id, skipped_by FROM queue WHERE skipped_by IS NOT NULL;
CREATE TABLE resolutions (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images(id),
    reviewer TEXT NOT NULL,
    event_id INTEGER REFERENCES label_events(id),  -- the reviewer's relabel (NULL: the label stayed)
    previous_annotator TEXT,                       -- whose label it replaced, and when it was given
    previous_at TEXT,
    closed TEXT NOT NULL,                          -- JSON list of the disagreement ids it closed
    at TEXT NOT NULL,
    undone INTEGER NOT NULL DEFAULT 0
);
"""

# Version 4: the images a round trains on and queues from are the split 'train' (they were
# 'pool', a word that elsewhere means the unlabelled images a strategy may choose). SQLite
# cannot change a CHECK constraint: the table is rebuilt (ids kept), with foreign keys off
# (REBUILDS) and checked before the commit.
_SCHEMA_V4 = """
CREATE TABLE images_v4 (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,          -- the item's id, relative to the project's image root
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    grp TEXT NOT NULL,                  -- images of one group stay in one split
    split TEXT NOT NULL DEFAULT 'train' CHECK (split IN ('train', 'test')),
    mtime_ns INTEGER
);
INSERT INTO images_v4 (id, path, sha256, bytes, grp, split, mtime_ns)
    SELECT id, path, sha256, bytes, grp, CASE split WHEN 'pool' THEN 'train' ELSE split END, mtime_ns
    FROM images;
DROP TABLE images;
ALTER TABLE images_v4 RENAME TO images
"""

# Version k -> the SQL that brings a version k - 1 database to k. A new column or table is a
# new entry here; an existing entry is never edited.
# version 5 (issue 18): counts per split and the held-out ids read an index, not every image
_SCHEMA_V5 = """
CREATE INDEX images_by_split ON images(split);
"""
MIGRATIONS: dict[int, str] = {1: _SCHEMA_V1, 2: _SCHEMA_V2, 3: _SCHEMA_V3, 4: _SCHEMA_V4, 5: _SCHEMA_V5}
REBUILDS = {4}  # migrations that rebuild a table others refer to: run with foreign keys off
TRAIN, TEST = "train", "test"  # the images' splits: rounds train on and queue from 'train' ones


def damaged(path: Path) -> ProjectError:
    return ProjectError(
        f"{path} is empty or not a unisal project database; restore it from a backup or create a "
        "project with `unisal project init`"
    )


def check_class_names(classes: list[str]) -> None:
    if len(classes) < 2 or len(set(classes)) != len(classes) or any(not c.strip() for c in classes):
        raise ProjectError(f"a project needs two or more distinct, non-empty class names; got {classes}")


def check_database(path: Path) -> None:
    """Refuse, without writing a byte, a file that is not a unisal project database: empty, not
    SQLite, or SQLite without the project's tables (another program's, or version 0).

    The file is read only through SQLite, never with ``open()``: this process may hold other
    connections to it (the web app's, while its round thread opens the project), and closing
    any plain descriptor of the file would drop their POSIX locks; the next process to close
    the database would then think it the last one and delete the write-ahead log in use.
    """
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB":
            raise damaged(path) from None
        raise ProjectError(f"{path} is not a readable project database: {exc}") from exc
    if version > SCHEMA_VERSION:
        raise ProjectError(
            f"{path} has schema version {version}, newer than this unisal ({SCHEMA_VERSION}): upgrade unisal"
        )
    if version < 1 or not tables >= _TABLES:
        raise damaged(path)


def now() -> str:
    """UTC time, ISO 8601 with microseconds (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def write_label(
    conn: sqlite3.Connection, image_id: int, old: int | None, new: int, annotator: str, action: str, at: str
) -> None:
    """Set an image's label and record the change (old -> new) in the audit trail."""
    conn.execute(
        "INSERT OR REPLACE INTO labels (image_id, class_id, annotator, at) VALUES (?, ?, ?, ?)",
        (image_id, new, annotator, at),
    )
    conn.execute(
        "INSERT INTO label_events (image_id, old_class_id, new_class_id, annotator, action, at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (image_id, old, new, annotator, action, at),
    )


@dataclass(frozen=True)
class LabelResult:
    """What happened to a submitted label: ``labelled``, ``relabelled``, ``unchanged`` (a double
    submit) or ``disagreement`` (another annotator's label stays; this one waits for review)."""

    status: str
    image_id: int
    label: str


@dataclass(frozen=True)
class QueueItem:
    image_id: int
    path: str
    reason: str
    score: float | None
    guess: str | None
    guess_confidence: float | None
    position: int


def held_out(image_id: int) -> HeldOutError:
    return HeldOutError(f"image {image_id} is in the held-out test set: it is not labelled in the app")


def stop_message(record: dict[str, Any]) -> str:
    """What a lab is told when a round's model has stopped changing; empty otherwise."""
    metrics = record.get("metrics") or {}
    if not metrics.get("stopped_changing"):
        return ""
    return (
        "the model has stopped changing: its predictions on a fixed sample of the images agree "
        "round to round (Cohen's kappa); more labels of this kind are unlikely to change it much"
    )


def guard_message(record: dict[str, Any]) -> str:
    """What a lab is told when the round's guard (unisal.guard) fell back; empty otherwise."""
    metrics = record.get("metrics") or {}
    if not metrics.get("guard_fallback"):
        return ""
    return (
        f"the co-trained model looked degenerate ({metrics.get('guard_reason', '')}): "
        "this round uses the heads trained on the labels alone"
    )
