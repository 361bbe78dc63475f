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
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from unisal.app.labels import LabelsMixin
from unisal.app.queue import QueueMixin
from unisal.app.schema import (
    DB_NAME,
    MIGRATIONS,
    REBUILDS,
    ROUND_KILLED,
    ROUND_LOCK_NAME,
    SCHEMA_VERSION,
    TEST,
    TRAIN,
    HeldOutError,
    LabelResult,
    ProjectError,
    QueueItem,
    check_class_names,
    check_database,
    damaged,
    now,
)

__all__ = [
    "DB_NAME",
    "SCHEMA_VERSION",
    "HeldOutError",
    "LabelResult",
    "ProjectError",
    "ProjectStore",
    "QueueItem",
    "damaged",
]


class ProjectStore(LabelsMixin, QueueMixin):
    """One project database. Thread-safe: each thread gets its own connection.

    Open with :meth:`create` (new project) or :meth:`open` (existing; migrated if older).
    """

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
        check_database(path)
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
            rebuild = target in REBUILDS
            if rebuild:  # a no-op inside a transaction: set before it, checked before its commit
                self.conn.execute("PRAGMA foreign_keys=OFF")
            try:
                with self.transaction() as conn:
                    # Another process (the web app, a second command) may have migrated meanwhile.
                    if int(conn.execute("PRAGMA user_version").fetchone()[0]) >= target:
                        continue
                    for statement in MIGRATIONS[target].split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    broken = conn.execute("PRAGMA foreign_key_check").fetchall() if rebuild else []
                    if broken:
                        raise ProjectError(
                            f"{self.path}: upgrading to schema version {target} would leave {len(broken)} "
                            "row(s) pointing at nothing; the database was left as it was"
                        )
                    conn.execute(f"PRAGMA user_version = {target}")
            finally:
                if rebuild:
                    self.conn.execute("PRAGMA foreign_keys=ON")

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

    def set_settings(self, settings: dict[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('settings', ?)", (json.dumps(settings),))

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

    def image_path(self, image_id: int) -> str:
        row = self.conn.execute("SELECT path FROM images WHERE id = ?", (image_id,)).fetchone()
        if row is None:
            raise ProjectError(f"no image with id {image_id}")
        return str(row[0])

    def images(self) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT id, path, sha256, bytes, grp, split, mtime_ns FROM images ORDER BY id"
        ).fetchall()

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
                "WHERE images.split = 'train'"
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
        per_split: dict[str, dict[str, int]] = {s: dict.fromkeys(names, 0) for s in (TRAIN, TEST)}
        for split, name, n in conn.execute(
            "SELECT images.split, classes.name, COUNT(*) FROM labels "
            "JOIN classes ON classes.id = labels.class_id JOIN images ON images.id = labels.image_id "
            "GROUP BY images.split, classes.name"
        ):
            per_split[split][name] = int(n)
        images = dict.fromkeys((TRAIN, TEST), 0)
        for split, n in conn.execute("SELECT split, COUNT(*) FROM images GROUP BY split"):
            images[split] = int(n)
        return {
            "images": images[TRAIN],
            "labelled": sum(per_split[TRAIN].values()),
            "per_class": per_split[TRAIN],
            "test_images": images["test"],
            "test_labelled": sum(per_split["test"].values()),
            "test_per_class": per_split["test"],
            "queue": self.queue_length(),
            "disagreements": len(self.disagreements()),
        }
