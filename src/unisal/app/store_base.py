"""The connection layer of a project database (:class:`StoreBase`): one connection per thread,
all-or-nothing transactions, the stored settings' JSON, the classes and image ids that every
part of :class:`unisal.app.store.ProjectStore` needs."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from unisal.app.schema import ProjectError, held_out
from unisal.data.catalogue import UnknownClassError


class StoreBase:
    """One project database's connections. Thread-safe: each thread gets its own connection."""

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

    def _damaged_value(self, what: str) -> ProjectError:
        return ProjectError(f"{self.path} is damaged: {what}; restore it from a backup")

    def _stored_json(self, text: Any, what: str) -> Any:
        """A JSON value this store wrote; a ProjectError saying ``what`` when it is not JSON."""
        try:
            return json.loads(text)
        except (TypeError, ValueError):
            raise self._damaged_value(what) from None

    def class_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM classes ORDER BY id")]

    def class_id(self, name: str) -> int:
        row = self.conn.execute("SELECT id FROM classes WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UnknownClassError(f"'{name}' is not one of the classes {self.class_names()}")
        return int(row[0])

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
        if row["split"] != "train":
            raise held_out(image_id)
        return str(row["path"])
