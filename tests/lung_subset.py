"""A small, balanced, real subset of LC25000-lung as a CSV data set (for end-to-end tests)."""

from __future__ import annotations

import csv
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LUNG = SHARED_DATA / "lc25000-lung"


def write_lung_subset(folder: Path, per_class: int = 20) -> tuple[Path, Path]:
    """Write ``data.csv`` (absolute path,label) and ``groups.csv`` for the first images of each class.

    Images are taken a whole group at a time, so that splits by group stay meaningful.
    """
    with (LUNG / "groups.csv").open(newline="") as handle:
        group_of = {row["path"]: row["group"] for row in csv.DictReader(handle)}
    chosen: list[tuple[str, str]] = []
    for cls in ("lung_aca", "lung_n", "lung_scc"):
        by_group: dict[str, list[str]] = {}
        for path in sorted(p for p in group_of if p.startswith(cls + "/")):
            by_group.setdefault(group_of[path], []).append(path)
        taken: list[str] = []
        for members in by_group.values():
            if len(taken) >= per_class:
                break
            taken += members[: per_class - len(taken)]
        chosen += [(p, cls) for p in taken]
    folder.mkdir(parents=True, exist_ok=True)
    data_csv, groups_csv = folder / "data.csv", folder / "groups.csv"
    with data_csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows((str(LUNG / p), cls) for p, cls in chosen)
    with groups_csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "group"])
        writer.writerows((str(LUNG / p), group_of[p]) for p, _ in chosen)
    return data_csv, groups_csv
