"""Compare two folders of runs on what they computed (benchmarks/compare_outputs.sh).

Compared: every ``rounds.csv``, every file under a ``queries/`` folder, every benchmark's
``summary.md`` and ``results.csv``, byte for byte, less what is measured rather than computed:
the ``*_seconds`` columns of ``results.csv`` and the "Time per round" section of ``summary.md``.
Prints one line per file and ``identical: N files`` or ``outputs differ``; exits 1 on a difference.

Usage: python benchmarks/computed_outputs.py BASE_RUNS HEAD_RUNS
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

TIMING_SECTION = "## Time per round"


def compared_files(root: Path) -> list[str]:
    """Relative paths of the files to compare under ``root``, sorted."""
    out = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(root)
        if path.name in ("rounds.csv", "summary.md", "results.csv") or "queries" in rel.parts[:-1]:
            out.append(rel.as_posix())
    return sorted(out)


def computed(path: Path) -> str:
    """The file's text less its measured parts."""
    text = path.read_text(encoding="utf-8")
    if path.name == "results.csv":
        rows = list(csv.reader(io.StringIO(text)))
        keep = [i for i, name in enumerate(rows[0]) if not name.endswith("_seconds")] if rows else []
        return "\n".join(",".join(row[i] for i in keep) for row in rows)
    if path.name == "summary.md":
        kept, skipping = [], False
        for line in text.splitlines():
            if line.startswith("## "):
                skipping = line.strip() == TIMING_SECTION
            if not skipping:
                kept.append(line)
        return "\n".join(kept)
    return text


def main(base: Path, head: Path) -> int:
    files, other = compared_files(base), compared_files(head)
    if not files:
        print(f"nothing to compare under {base}")
        return 1
    differ = sorted(set(files) ^ set(other))
    for name in differ:
        print(f"ONLY IN {'base' if name in files else 'head'}: {name}")
    for name in files:
        if name in other:
            same = computed(base / name) == computed(head / name)
            print(f"{'same     ' if same else 'DIFFERENT'} {name}")
            if not same:
                differ.append(name)
    print("outputs differ" if differ else f"identical: {len(files)} files")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
