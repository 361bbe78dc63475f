"""Opening the project again in a process that already holds it (the web app's round thread)
must keep the SQLite locks of its other connections: a plain open()/close() of the database
file drops every POSIX lock this process holds on it, and the next process to close the
database then deletes the write-ahead log that the app is still writing into."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from unisal.app.store import ProjectStore

CLASSES = ["a", "b"]


def in_other_process(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout


def test_opening_the_database_again_keeps_the_write_ahead_log_of_open_connections(tmp_path: Path):
    db = tmp_path / "project.db"
    ProjectStore.create(db, classes=CLASSES, settings={}).close()
    server = ProjectStore.open(db)  # the app's connection, open for its whole life
    server.add_images((f"i{i}.png", f"{i:064x}", 1, f"g{i}", "train", None) for i in range(1, 6))
    server.set_label(1, "a", "eve")
    ProjectStore.open(db).close()  # a round started from the app opens the project again
    # `unisal project status` from another process: it opens, reads and closes the database
    in_other_process(
        f"import sqlite3; c = sqlite3.connect({str(db)!r}); c.execute('SELECT 1 FROM labels'); c.close()"
    )
    for image_id in (2, 3, 4):
        assert server.set_label(image_id, "b", "eve").status == "labelled"
    assert Path(f"{db}-wal").is_file()  # the app's write-ahead log is still the one on disk
    on_disk = in_other_process(
        f"import sqlite3; c = sqlite3.connect({str(db)!r}); "
        "print(c.execute('SELECT image_id FROM labels ORDER BY image_id').fetchall())"
    )
    assert on_disk.strip() == "[(1,), (2,), (3,), (4,)]"
    server.close()
