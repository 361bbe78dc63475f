"""The labelling project's one source of truth: an SQLite database (WAL mode, versioned schema).

It holds the images (path relative to the image root, content hash, size, group, split), the
classes, the current label of each image with its annotator and time, an audit trail of every
change (old -> new), labels that disagree with an earlier annotator's (kept for review, never
written over), the rounds (settings, metrics, checkpoint, status) and the query queue with the
reason each item was picked and a lease per annotator.

Every change is one transaction: a label the caller was told about is on disk, even if the
process is killed right after (SQLite's write-ahead log).
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from unisal.data.catalogue import UnknownClassError
from unisal.errors import HeldOutError, ProjectError

SCHEMA_VERSION = 3
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

# Version k -> the SQL that brings a version k - 1 database to k. A new column or table is a
# new entry here; an existing entry is never edited.
MIGRATIONS: dict[int, str] = {1: _SCHEMA_V1, 2: _SCHEMA_V2, 3: _SCHEMA_V3}


def damaged(path: Path) -> ProjectError:
    return ProjectError(
        f"{path} is empty or not a unisal project database; restore it from a backup or create a "
        "project with `unisal project init`"
    )


def check_class_names(classes: list[str]) -> None:
    if len(classes) < 2 or len(set(classes)) != len(classes) or any(not c.strip() for c in classes):
        raise ProjectError(f"a project needs two or more distinct, non-empty class names; got {classes}")


def _check_database(path: Path) -> None:
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


def _write_label(
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


class ProjectStore:
    """One project database. Thread-safe: each thread gets its own connection.

    Open with :meth:`create` (new project) or :meth:`open` (existing; migrated if older).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._local = threading.local()

    # ---- connections and transactions
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # an acknowledged label survives a crash
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any error): all or nothing."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ---- creation and migration
    @classmethod
    def create(cls, path: str | Path, *, classes: list[str], settings: dict[str, Any]) -> ProjectStore:
        path = Path(path)
        if path.exists():
            raise ProjectError(f"{path} already exists")
        check_class_names(classes)
        store = cls(path)
        store.migrate(create=True)
        with store.transaction() as conn:
            conn.executemany("INSERT INTO classes (id, name) VALUES (?, ?)", list(enumerate(classes)))
            conn.execute("INSERT INTO meta VALUES ('settings', ?)", (json.dumps(settings),))
            conn.execute("INSERT INTO meta VALUES ('created_at', ?)", (now(),))
        return store

    @classmethod
    def open(cls, path: str | Path) -> ProjectStore:
        """An existing project database, migrated to this version; never creates one.

        Raises:
            ProjectError: no file, or one that is empty, not SQLite, another program's, or newer.
        """
        path = Path(path)
        if not path.is_file():
            raise ProjectError(f"no project database at {path}")
        _check_database(path)
        store = cls(path)
        try:
            store.migrate()
        except sqlite3.DatabaseError as exc:
            raise ProjectError(f"{path} is not a readable project database: {exc}") from exc
        return store

    @property
    def version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self, *, create: bool = False) -> None:
        """Apply every migration above the database's version, each in its own transaction.

        Only ``create`` starts from version 0 (an empty file): opening never creates tables.
        """
        version = self.version
        if version > SCHEMA_VERSION:
            raise ProjectError(
                f"{self.path} has schema version {version}, newer than this unisal ({SCHEMA_VERSION}): upgrade unisal"
            )
        if version == 0 and not create:
            raise damaged(self.path)
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction() as conn:
                # Another process (the web app, a second command) may have migrated meanwhile.
                if int(conn.execute("PRAGMA user_version").fetchone()[0]) >= target:
                    continue
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")

    # ---- settings and classes
    def settings(self) -> dict[str, Any]:
        """The project's settings (a JSON object in ``meta``).

        Raises:
            ProjectError: they are not a JSON object (a damaged database).
        """
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'settings'").fetchone()
        if row is None:
            return {}
        settings = self._stored_json(row[0], "its settings are not a JSON object")
        if not isinstance(settings, dict):
            raise self._damaged_value("its settings are not a JSON object")
        return settings

    def _damaged_value(self, what: str) -> ProjectError:
        return ProjectError(f"{self.path} is damaged: {what}; restore it from a backup")

    def _stored_json(self, text: Any, what: str) -> Any:
        """A JSON value this store wrote; a ProjectError saying ``what`` when it is not JSON."""
        try:
            return json.loads(text)
        except (TypeError, ValueError):
            raise self._damaged_value(what) from None

    def set_settings(self, settings: dict[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('settings', ?)", (json.dumps(settings),))

    def class_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM classes ORDER BY id")]

    def class_id(self, name: str) -> int:
        row = self.conn.execute("SELECT id FROM classes WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UnknownClassError(f"'{name}' is not one of the classes {self.class_names()}")
        return int(row[0])

    # ---- images
    def add_images(self, rows: Iterable[tuple[str, str, int, str, str, int | None]]) -> int:
        """Insert ``(path, sha256, bytes, group, split, mtime_ns)`` rows in one transaction
        (``mtime_ns``: the file's modification time when it was hashed); returns the count."""
        rows = list(rows)
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO images (path, sha256, bytes, grp, split, mtime_ns) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def set_mtimes(self, rows: list[tuple[int, int]]) -> None:
        """Record ``(image id, mtime_ns)``: the file was hashed again and its bytes are unchanged."""
        with self.transaction() as conn:
            conn.executemany("UPDATE images SET mtime_ns = ? WHERE id = ?", [(m, i) for i, m in rows])

    def image_ids(self, paths: list[str]) -> dict[str, int]:
        """Path -> id for the paths the project holds."""
        out: dict[str, int] = {}
        for start in range(0, len(paths), 500):
            chunk = paths[start : start + 500]
            marks = ",".join("?" * len(chunk))
            out.update(
                {
                    r[0]: r[1]
                    for r in self.conn.execute(f"SELECT path, id FROM images WHERE path IN ({marks})", chunk)
                }
            )
        return out

    def image_path(self, image_id: int) -> str:
        row = self.conn.execute("SELECT path FROM images WHERE id = ?", (image_id,)).fetchone()
        if row is None:
            raise ProjectError(f"no image with id {image_id}")
        return str(row[0])

    def images(self) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT id, path, sha256, bytes, grp, split, mtime_ns FROM images ORDER BY id"
        ).fetchall()

    # ---- labels
    def _label_row(self, conn: sqlite3.Connection, image_id: int) -> sqlite3.Row | None:
        return conn.execute(
            "SELECT class_id, annotator FROM labels WHERE image_id = ?", (image_id,)
        ).fetchone()

    def _pool_image(self, conn: sqlite3.Connection, image_id: int) -> str:
        """The path of pool image ``image_id``.

        Raises:
            HeldOutError: it is a held-out test image.
            ProjectError: there is no such image.
        """
        row = conn.execute("SELECT path, split FROM images WHERE id = ?", (image_id,)).fetchone()
        if row is None:
            raise ProjectError(f"no image with id {image_id}")
        if row["split"] != "pool":
            raise held_out(image_id)
        return str(row["path"])

    def labelling_image_path(self, image_id: int) -> str:
        """The path of an image the app may show: a pool image (see :meth:`_pool_image`)."""
        return self._pool_image(self.conn, image_id)

    def held_out_ids(self) -> set[int]:
        """Ids of the held-out test images."""
        return {int(r[0]) for r in self.conn.execute("SELECT id FROM images WHERE split = 'test'")}

    def set_label(self, image_id: int, label: str, annotator: str) -> LabelResult:
        """Label a pool image; audited. A different annotator's differing label is kept as a
        disagreement. A held-out test image is refused (:class:`HeldOutError`)."""
        class_id = self.class_id(label)
        at = now()
        with self.transaction() as conn:
            self._pool_image(conn, image_id)
            current = self._label_row(conn, image_id)
            if current is not None and current["class_id"] == class_id:
                status = "unchanged"
            elif current is not None and current["annotator"] != annotator:
                conn.execute(
                    "INSERT INTO disagreements (image_id, class_id, annotator, at) VALUES (?, ?, ?, ?)",
                    (image_id, class_id, annotator, at),
                )
                status = "disagreement"
            else:
                old = None if current is None else current["class_id"]
                _write_label(
                    conn, image_id, old, class_id, annotator, "label" if old is None else "relabel", at
                )
                status = "labelled" if old is None else "relabelled"
            conn.execute(
                "UPDATE queue SET lease_owner = NULL, lease_until = NULL WHERE image_id = ?", (image_id,)
            )
        return LabelResult(status, image_id, label)

    def undo(self, annotator: str) -> LabelResult | None:
        """Revert this annotator's latest change of a pool image that is still in effect: a
        label (see :meth:`_undo_label`) or a resolution (see :meth:`_undo_resolution`); None if
        there is none. (A held-out image's label is never changed through the app, nor an older
        database's change of one undone.)

        Raises:
            ProjectError: that change was changed since by someone else; nothing is undone.
        """
        with self.transaction() as conn:
            event = conn.execute(
                "SELECT e.id, e.image_id, e.old_class_id, e.new_class_id, e.at FROM label_events e "
                "JOIN images ON images.id = e.image_id AND images.split = 'pool' "
                "WHERE e.annotator = ? AND e.action IN ('label', 'relabel') AND e.undone = 0 "
                "AND e.id NOT IN (SELECT event_id FROM resolutions WHERE event_id IS NOT NULL) "
                "ORDER BY e.id DESC LIMIT 1",
                (annotator,),
            ).fetchone()
            resolution = conn.execute(
                "SELECT r.* FROM resolutions r JOIN images ON images.id = r.image_id AND images.split = 'pool' "
                "WHERE r.reviewer = ? AND r.undone = 0 ORDER BY r.id DESC LIMIT 1",
                (annotator,),
            ).fetchone()
            if resolution is not None and (event is None or resolution["at"] >= event["at"]):
                image_id, old = self._undo_resolution(conn, resolution)
            elif event is not None:
                image_id, old = self._undo_label(conn, event, annotator)
            else:
                return None
        return LabelResult("undone", image_id, "" if old is None else self.class_names()[old])

    @staticmethod
    def _changed_since() -> ProjectError:
        return ProjectError("the latest label was changed since; nothing was undone")

    def _undo_label(
        self, conn: sqlite3.Connection, event: sqlite3.Row, annotator: str
    ) -> tuple[int, int | None]:
        """The image's label goes back to the class before ``event`` (none: unlabelled). Open
        disagreements on the image stay open: with no label left, a reviewer picks one of the
        classes the others gave. Returns (image id, the class now, or None)."""
        image_id = int(event["image_id"])
        current = self._label_row(conn, image_id)
        if (
            current is None
            or current["class_id"] != event["new_class_id"]
            or current["annotator"] != annotator
        ):
            raise self._changed_since()
        if event["old_class_id"] is None:
            conn.execute("DELETE FROM labels WHERE image_id = ?", (image_id,))
        else:
            conn.execute(
                "UPDATE labels SET class_id = ?, at = ? WHERE image_id = ?",
                (event["old_class_id"], now(), image_id),
            )
        conn.execute("UPDATE label_events SET undone = 1 WHERE id = ?", (event["id"],))
        conn.execute(
            "INSERT INTO label_events (image_id, old_class_id, new_class_id, annotator, action, at) "
            "VALUES (?, ?, ?, ?, 'undo', ?)",
            (image_id, event["new_class_id"], event["old_class_id"], annotator, now()),
        )
        return image_id, event["old_class_id"]

    def _undo_resolution(self, conn: sqlite3.Connection, resolution: sqlite3.Row) -> tuple[int, int | None]:
        """The label before the resolution comes back with its own annotator and time (the
        audit trail records the reviewer's undo), and the cases it closed are open again.
        Returns (image id, the class now, or None)."""
        image_id = int(resolution["image_id"])
        reviewer = resolution["reviewer"]
        current = conn.execute(
            "SELECT class_id, annotator, at FROM labels WHERE image_id = ?", (image_id,)
        ).fetchone()
        if resolution["event_id"] is None:  # the label stayed: it must still be the one it kept
            if current is None or (current["annotator"], current["at"]) != (
                resolution["previous_annotator"],
                resolution["previous_at"],
            ):
                raise self._changed_since()
            old = int(current["class_id"])
        else:
            event = conn.execute(
                "SELECT old_class_id, new_class_id FROM label_events WHERE id = ?", (resolution["event_id"],)
            ).fetchone()
            if current is None or (current["class_id"], current["annotator"]) != (
                event["new_class_id"],
                reviewer,
            ):
                raise self._changed_since()
            old = event["old_class_id"]
            if old is None:
                conn.execute("DELETE FROM labels WHERE image_id = ?", (image_id,))
            else:
                conn.execute(
                    "UPDATE labels SET class_id = ?, annotator = ?, at = ? WHERE image_id = ?",
                    (old, resolution["previous_annotator"], resolution["previous_at"], image_id),
                )
            conn.execute("UPDATE label_events SET undone = 1 WHERE id = ?", (resolution["event_id"],))
            conn.execute(
                "INSERT INTO label_events (image_id, old_class_id, new_class_id, annotator, action, at) "
                "VALUES (?, ?, ?, ?, 'undo', ?)",
                (image_id, event["new_class_id"], old, reviewer, now()),
            )
        closed = [
            int(i) for i in self._stored_json(resolution["closed"], "a resolution's cases are not JSON")
        ]
        conn.executemany("UPDATE disagreements SET resolved = 0 WHERE id = ?", [(i,) for i in closed])
        conn.execute("UPDATE resolutions SET undone = 1 WHERE id = ?", (resolution["id"],))
        return image_id, old

    def labels(self) -> dict[str, tuple[str, str, str]]:
        """Path -> (class name, annotator, time) of every labelled image."""
        rows = self.conn.execute(
            "SELECT images.path, classes.name, labels.annotator, labels.at FROM labels "
            "JOIN images ON images.id = labels.image_id JOIN classes ON classes.id = labels.class_id "
            "ORDER BY images.id"
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def import_labels(self, rows: list[tuple[str, str]], annotator: str) -> int:
        """Set ``(path, class name)`` labels all at once, or none: an unknown image or class is an
        error naming every offender (at most 5 shown). Returns how many labels changed."""
        names = self.class_names()
        ids = self.image_ids([p for p, _ in rows])
        unknown_images = [p for p, _ in rows if p not in ids]
        unknown_classes = sorted({c for _, c in rows if c not in names})
        problems = []
        if unknown_images:
            problems.append(f"{len(unknown_images)} unknown image(s), e.g. {', '.join(unknown_images[:5])}")
        if unknown_classes:
            problems.append(
                f"unknown class(es) {', '.join(map(repr, unknown_classes[:5]))} (classes: {names})"
            )
        seen: dict[str, str] = {}
        conflicts = sorted({p for p, c in rows if seen.setdefault(p, c) != c})
        if conflicts:
            problems.append(
                f"{len(conflicts)} image(s) with two different labels, e.g. {', '.join(conflicts[:5])}"
            )
        if problems:
            raise ProjectError("nothing imported: " + "; ".join(problems))
        changed = 0
        at = now()
        with self.transaction() as conn:
            for path, label in dict(rows).items():
                image_id, class_id = ids[path], names.index(label)
                current = self._label_row(conn, image_id)
                old = None if current is None else current["class_id"]
                if old == class_id:
                    continue
                _write_label(conn, image_id, old, class_id, annotator, "import", at)
                changed += 1
        return changed

    def disagreements(self) -> list[sqlite3.Row]:
        """Open disagreements on pool images: the image, the label kept and its annotator, the
        other label and its annotator. (A case on a held-out image, which an older version let in,
        cannot be resolved: held-out labels change only through ``--test``.)"""
        return self.conn.execute(
            "SELECT d.id, d.image_id, images.path, classes.name AS label, d.annotator, d.at, "
            "kept.name AS current, labels.annotator AS current_annotator FROM disagreements d "
            "JOIN images ON images.id = d.image_id JOIN classes ON classes.id = d.class_id "
            "LEFT JOIN labels ON labels.image_id = d.image_id LEFT JOIN classes kept ON kept.id = labels.class_id "
            "WHERE d.resolved = 0 AND images.split = 'pool' ORDER BY d.id"
        ).fetchall()

    def resolve(self, disagreement_id: int, label: str, reviewer: str) -> LabelResult:
        """Settle a disagreement with ``label`` (either side's, or another class): the image's
        label becomes it (audited as the reviewer's relabel when it changes) and every open
        disagreement on that image is closed. One on a held-out test image (an older database's)
        is refused (:class:`HeldOutError`)."""
        class_id = self.class_id(label)
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT image_id FROM disagreements WHERE id = ? AND resolved = 0", (disagreement_id,)
            ).fetchone()
            if row is None:
                raise ProjectError(f"no open disagreement with id {disagreement_id}")
            image_id = int(row["image_id"])
            self._pool_image(conn, image_id)
            current = conn.execute(
                "SELECT class_id, annotator, at FROM labels WHERE image_id = ?", (image_id,)
            ).fetchone()
            old = None if current is None else current["class_id"]
            at = now()
            event_id = None
            if old != class_id:
                _write_label(conn, image_id, old, class_id, reviewer, "relabel", at)
                event_id = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            closed = [
                int(r[0])
                for r in conn.execute(
                    "SELECT id FROM disagreements WHERE image_id = ? AND resolved = 0 ORDER BY id",
                    (image_id,),
                )
            ]
            conn.execute(
                "UPDATE disagreements SET resolved = 1 WHERE image_id = ? AND resolved = 0", (image_id,)
            )
            conn.execute(
                "INSERT INTO resolutions (image_id, reviewer, event_id, previous_annotator, previous_at, closed, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    image_id,
                    reviewer,
                    event_id,
                    None if current is None else current["annotator"],
                    None if current is None else current["at"],
                    json.dumps(closed),
                    at,
                ),
            )
        return LabelResult("resolved", image_id, label)

    def history(self) -> list[sqlite3.Row]:
        """The audit trail, oldest first."""
        return self.conn.execute(
            "SELECT e.id, images.path, old.name AS old, new.name AS new, e.annotator, e.action, e.at "
            "FROM label_events e JOIN images ON images.id = e.image_id "
            "LEFT JOIN classes old ON old.id = e.old_class_id LEFT JOIN classes new ON new.id = e.new_class_id "
            "ORDER BY e.id"
        ).fetchall()

    # ---- the queue and leases
    def replace_queue(self, round_id: int | None, items: list[dict[str, Any]]) -> None:
        """The next batch: ``image_id``, ``reason`` and optionally ``score``, ``guess`` (class
        name), ``guess_confidence``, in the order to show them. Unknown ids and held-out test
        images are refused (nothing changes)."""
        names = self.class_names()
        with self.transaction() as conn:
            self._check_queueable(conn, [int(item["image_id"]) for item in items])
            conn.execute("DELETE FROM skips")  # a new batch: every item is offered afresh
            conn.execute("DELETE FROM queue")
            conn.executemany(
                "INSERT INTO queue (image_id, round_id, position, reason, score, guess_class_id, guess_confidence) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        item["image_id"],
                        round_id,
                        k,
                        item["reason"],
                        item.get("score"),
                        names.index(item["guess"]) if item.get("guess") is not None else None,
                        item.get("guess_confidence"),
                    )
                    for k, item in enumerate(items)
                ],
            )

    @staticmethod
    def _check_queueable(conn: sqlite3.Connection, image_ids: list[int]) -> None:
        """Refuse (ProjectError, at most 5 ids shown) ids that are no image or a held-out one."""
        split: dict[int, str] = {}
        for start in range(0, len(image_ids), 500):
            chunk = image_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(f"SELECT id, split FROM images WHERE id IN ({marks})", chunk)
            split.update({int(r[0]): str(r[1]) for r in rows})
        for problem, bad in (
            ("unknown image id(s)", [i for i in image_ids if i not in split]),
            ("held-out test image(s)", [i for i in image_ids if split.get(i, "pool") != "pool"]),
        ):
            if bad:
                raise ProjectError(f"cannot queue {problem} {', '.join(map(str, bad[:5]))}")

    def lease(self, annotator: str, count: int = 1, *, lease_seconds: float = 600.0) -> list[QueueItem]:
        """Up to ``count`` queued, unlabelled items that no other annotator holds (or whose lease
        ran out) and this annotator has not skipped, the annotator's own leases first, then in
        queue order; all leased to ``annotator`` in one transaction."""
        t = datetime.now(UTC)
        until = (t + timedelta(seconds=lease_seconds)).isoformat(timespec="microseconds")
        with self.transaction() as conn:
            rows = conn.execute(
                "SELECT q.image_id, images.path, q.reason, q.score, classes.name AS guess, q.guess_confidence, q.position "
                "FROM queue q JOIN images ON images.id = q.image_id LEFT JOIN classes ON classes.id = q.guess_class_id "
                "WHERE q.image_id NOT IN (SELECT image_id FROM labels) AND images.split = 'pool' "
                "AND NOT EXISTS (SELECT 1 FROM skips s WHERE s.image_id = q.image_id AND s.annotator = ?) "
                "AND (q.lease_owner IS NULL OR q.lease_owner = ? OR q.lease_until < ?) "
                "ORDER BY (q.lease_owner = ?) DESC, q.position LIMIT ?",
                (annotator, annotator, t.isoformat(timespec="microseconds"), annotator, count),
            ).fetchall()
            conn.executemany(
                "UPDATE queue SET lease_owner = ?, lease_until = ? WHERE image_id = ?",
                [(annotator, until, r["image_id"]) for r in rows],
            )
        return [
            QueueItem(
                r["image_id"],
                r["path"],
                r["reason"],
                r["score"],
                r["guess"],
                r["guess_confidence"],
                r["position"],
            )
            for r in rows
        ]

    def lease_next(self, annotator: str, *, lease_seconds: float = 600.0) -> QueueItem | None:
        """The next item for ``annotator`` (see :meth:`lease`); None when none is left."""
        items = self.lease(annotator, 1, lease_seconds=lease_seconds)
        return items[0] if items else None

    def skip(self, image_id: int, annotator: str) -> None:
        """This annotator will not be offered the queued item again; their own lease on it ends
        (another annotator's lease stays: it is theirs to label or skip).

        Raises:
            HeldOutError: a held-out test image.
            ProjectError: no such image, or it is not in the queue.
        """
        with self.transaction() as conn:
            self._pool_image(conn, image_id)
            if conn.execute("SELECT 1 FROM queue WHERE image_id = ?", (image_id,)).fetchone() is None:
                raise ProjectError(f"image {image_id} is not in the queue")
            conn.execute(
                "INSERT OR IGNORE INTO skips (image_id, annotator) VALUES (?, ?)", (image_id, annotator)
            )
            conn.execute(
                "UPDATE queue SET lease_owner = NULL, lease_until = NULL WHERE image_id = ? AND lease_owner = ?",
                (image_id, annotator),
            )

    def queue_length(self) -> int:
        return int(
            self.conn.execute(
                "SELECT COUNT(*) FROM queue WHERE image_id NOT IN (SELECT image_id FROM labels)"
            ).fetchone()[0]
        )

    # ---- rounds
    @property
    def round_lock_file(self) -> Path:
        return self.path.parent / ROUND_LOCK_NAME

    @contextmanager
    def round_lock(self, *, wait: float = 1.0) -> Iterator[None]:
        """Hold the project's round lock: an OS lock (``flock``) that dies with its process, even
        by SIGKILL. It is taken per call, on a file opened per call, so a second round is refused
        whether it comes from another process or another thread of this one (the web app).

        Args:
            wait: seconds to retry while someone holds it briefly (``status`` settling a stale round).

        Raises:
            ProjectError: a round is running (someone else holds the lock), or the project
                folder cannot be written.
        """
        try:
            handle = self.round_lock_file.open("a+")
        except OSError as exc:
            raise ProjectError(f"cannot lock {self.round_lock_file}: {exc.strerror or exc}") from None
        deadline = time.monotonic() + wait
        try:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise ProjectError("a round is already running; wait for it to finish") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            handle.close()

    def fail_stale_rounds(self) -> int:
        """Record as failed (``ROUND_KILLED``) the rounds marked running whose process is gone,
        i.e. nobody holds the round lock; returns how many. A no-op while a round runs, or where
        the project folder cannot be written."""
        if not self.conn.execute("SELECT 1 FROM rounds WHERE status = 'running'").fetchone():
            return 0
        try:
            with self.round_lock(wait=0.0):
                return self.fail_running_rounds()
        except ProjectError:
            return 0

    def fail_running_rounds(self) -> int:
        """With the round lock held: no round is really running, whatever the database says."""
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE rounds SET status = 'failed', finished_at = ?, error = ? WHERE status = 'running'",
                (now(), ROUND_KILLED),
            )
            return int(cur.rowcount)

    def start_round(self, settings: dict[str, Any]) -> int:
        """A new round (status ``running``); refused while another one runs. ``n_labels`` counts
        the labels a round trains on: those of pool images (see :meth:`counts`)."""
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM rounds WHERE status = 'running'").fetchone():
                raise ProjectError("a round is already running; wait for it to finish")
            n = conn.execute(
                "SELECT COUNT(*) FROM labels JOIN images ON images.id = labels.image_id "
                "WHERE images.split = 'pool'"
            ).fetchone()[0]
            cur = conn.execute(
                "INSERT INTO rounds (status, started_at, n_labels, settings) VALUES ('running', ?, ?, ?)",
                (now(), n, json.dumps(settings)),
            )
            return int(cur.lastrowid or 0)

    def finish_round(self, round_id: int, *, metrics: dict[str, Any], checkpoint: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE rounds SET status = 'done', finished_at = ?, metrics = ?, checkpoint = ? WHERE id = ?",
                (now(), json.dumps(metrics), checkpoint, round_id),
            )

    def fail_round(self, round_id: int, error: str) -> None:
        """Record a running round as failed; a round that finished stays done (an interruption
        that lands after its last write does not undo it)."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE rounds SET status = 'failed', finished_at = ?, error = ? "
                "WHERE id = ? AND status = 'running'",
                (now(), error, round_id),
            )

    def rounds(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM rounds ORDER BY id").fetchall()
        out = []
        for r in rows:
            item = dict(r)
            for column in ("settings", "metrics"):
                what = f"the {column} of round {item['id']} are not JSON"
                empty = column == "metrics" and not item[column]  # a round that has not finished
                item[column] = None if empty else self._stored_json(item[column], what)
            out.append(item)
        return out

    # ---- summary
    def counts(self) -> dict[str, Any]:
        """Images, labels per class, queue length and open disagreements.

        One definition everywhere (status, the app's progress, rounds): ``images``, ``labelled``
        and ``per_class`` are the pool's (the labels a round trains on); the labelled hold-out
        is counted apart in ``test_images``, ``test_labelled`` and ``test_per_class``.
        """
        conn = self.conn
        names = self.class_names()
        per_split: dict[str, dict[str, int]] = {s: dict.fromkeys(names, 0) for s in ("pool", "test")}
        for split, name, n in conn.execute(
            "SELECT images.split, classes.name, COUNT(*) FROM labels "
            "JOIN classes ON classes.id = labels.class_id JOIN images ON images.id = labels.image_id "
            "GROUP BY images.split, classes.name"
        ):
            per_split[split][name] = int(n)
        images = dict.fromkeys(("pool", "test"), 0)
        for split, n in conn.execute("SELECT split, COUNT(*) FROM images GROUP BY split"):
            images[split] = int(n)
        return {
            "images": images["pool"],
            "labelled": sum(per_split["pool"].values()),
            "per_class": per_split["pool"],
            "test_images": images["test"],
            "test_labelled": sum(per_split["test"].values()),
            "test_per_class": per_split["test"],
            "queue": self.queue_length(),
            "disagreements": len(self.disagreements()),
        }
