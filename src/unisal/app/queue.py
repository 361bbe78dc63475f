"""The query queue of a project and the annotators' leases on it (:class:`QueueMixin` of
:class:`unisal.app.store.ProjectStore`)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from unisal.app.schema import QueueItem
from unisal.app.store_base import StoreBase
from unisal.errors import ProjectError


class QueueMixin(StoreBase):
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
            ("held-out test image(s)", [i for i in image_ids if split.get(i, "train") != "train"]),
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
                # CROSS JOIN: the queue (a batch) drives the join, never a scan of every image
                "FROM queue q CROSS JOIN images ON images.id = q.image_id LEFT JOIN classes ON classes.id = q.guess_class_id "
                "WHERE q.image_id NOT IN (SELECT image_id FROM labels) AND images.split = 'train' "
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
