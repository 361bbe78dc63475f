"""The ``tiles`` reader: a tile table of ``unisal tiles`` as a catalogue, labelled by its ``label``
column or by region annotations (QuPath GeoJSON, ``unisal.data.regions``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from unisal.data.catalogue import UNLABELLED, Catalogue
from unisal.errors import DataError, UnknownClassError
from unisal.io import read_csv_rows


def read_tile_table(
    csv_path: str | Path, *, label_column: str = "label", classes: str = "", regions: str = "",
    threshold: str = "0.5",
) -> Catalogue:  # fmt: skip
    """A tile table of ``unisal tiles`` (``unisal.data.tiling``): each row a tile read from its slide
    on demand; its group is the table's ``group`` (the slide or patient), so that no split crosses
    a slide; labels from ``label_column`` where given (empty: unlabelled), or from ``regions``
    (QuPath GeoJSON: a file, or a folder of ``<slide>.geojson``; a tile takes a region's class
    where the region covers ``threshold`` of its tissue, ``unisal.data.regions``)."""
    from unisal.data.slides import SlideTiles, tile_id

    csv_path = Path(csv_path).resolve()
    if not csv_path.is_file():
        raise DataError(f"tile table not found: {csv_path}")
    fields, records = read_csv_rows(csv_path)
    need = ["slide", "x", "y", "level", "read_size", "size"]
    missing = [c for c in need if c not in fields]
    if missing:
        raise DataError(
            f"{csv_path} is not a tile table: no column(s) {', '.join(missing)} (write one with `unisal tiles`)"
        )
    if not records:
        raise DataError(f"{csv_path} lists no tiles")
    ids, labels_given, groups_given = [], [], []
    for line, r in enumerate(records, start=2):
        try:
            numbers = [int(r[c]) for c in need[1:]]
        except (TypeError, ValueError):
            raise DataError(
                f"{csv_path} line {line}: x, y, level, read_size and size must be whole numbers"
            ) from None
        slide = os.path.normpath(csv_path.parent / r["slide"].strip())
        ids.append(tile_id(slide, *numbers))
        labels_given.append((r.get(label_column) or "").strip())
        groups_given.append((r.get("group") or "").strip() or Path(slide).stem)
    if regions:
        labels_given = _region_labels(ids, labels_given, regions, threshold, csv_path)
    present = sorted({lab for lab in labels_given if lab})
    names = [c.strip() for c in classes.split(",") if c.strip()] or present
    unknown = [lab for lab in present if lab not in names]
    if unknown:
        raise UnknownClassError(f"'{unknown[0]}' in {csv_path} is not one of the classes {names}")
    labels = np.asarray([names.index(lab) if lab else UNLABELLED for lab in labels_given], np.int64)
    group_ids = {g: k for k, g in enumerate(dict.fromkeys(groups_given))}
    groups = np.asarray([group_ids[g] for g in groups_given], np.int64)
    return Catalogue(SlideTiles(tuple(ids)), labels, groups, names, str(csv_path.parent))


def _region_labels(ids: list[str], given: list[str], regions: str, threshold: str, table: Path) -> list[str]:
    """The tiles' labels from region files, slide by slide (a tile the table labels keeps it)."""
    from unisal.data.regions import labels_from_regions, read_regions, regions_for

    try:
        least = float(threshold)
    except ValueError:
        raise DataError(f"threshold must be a number in (0, 1]; got {threshold!r}") from None
    by_slide: dict[str, list[int]] = {}
    for i, item in enumerate(ids):
        by_slide.setdefault(item.rpartition("::tile/")[0], []).append(i)
    out = list(given)
    found = 0
    for slide, members in by_slide.items():
        file = regions_for(slide, regions)
        if file is None:
            continue
        polygons, _ = read_regions(file)
        labels = labels_from_regions([ids[i] for i in members], polygons, threshold=least).labels
        for i in members:
            out[i] = out[i] or labels.get(ids[i], "")
        found += len(labels)
    if not found:
        raise DataError(f"the regions {regions} label no tile of {table} (covered past {least})")
    return out


__all__ = ["read_tile_table"]
