"""Labels of a project: set, undo, import, disagreements between annotators and their review,
the audit trail (:class:`LabelsMixin` of :class:`unisal.app.store.ProjectStore`)."""

from __future__ import annotations

import json
import sqlite3

from unisal.app.schema import LabelResult, now, write_label
from unisal.app.store_base import StoreBase
from unisal.errors import ProjectError


class LabelsMixin(StoreBase):
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
                write_label(
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
                "JOIN images ON images.id = e.image_id AND images.split = 'train' "
                "WHERE e.annotator = ? AND e.action IN ('label', 'relabel') AND e.undone = 0 "
                "AND e.id NOT IN (SELECT event_id FROM resolutions WHERE event_id IS NOT NULL) "
                "ORDER BY e.id DESC LIMIT 1",
                (annotator,),
            ).fetchone()
            resolution = conn.execute(
                "SELECT r.* FROM resolutions r JOIN images ON images.id = r.image_id AND images.split = 'train' "
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
                write_label(conn, image_id, old, class_id, annotator, "import", at)
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
            "WHERE d.resolved = 0 AND images.split = 'train' ORDER BY d.id"
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
                write_label(conn, image_id, old, class_id, reviewer, "relabel", at)
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
