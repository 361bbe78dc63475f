"""Region annotations (QuPath's GeoJSON) as labels of slide tiles.

QuPath's conventions (its docs, "Exporting annotations"): coordinates are pixels of the full-
resolution image (level 0), origin at its top-left; a file is a ``FeatureCollection`` (or a
bare list of features) of one image; each feature's ``properties`` hold ``objectType``
(``annotation``, ``detection``, ``tile``, ...) and ``classification`` ``{"name", "color": [r, g,
b]}`` (older exports: ``"colorRGB"``, a packed signed integer). Polygons may have holes;
MultiPolygons are read part by part; other geometries (points, lines) cover no tile.

A tile takes a region's class when the region covers at least ``threshold`` of the tile's
tissue (sampled on a grid of points in the tile; points on glass, by the slide's tissue mask,
do not count). A tile covered past the threshold by two classes is a conflict: reported, not
labelled.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unisal.data.slides import open_slide, parse_tile_id, thumbnail, tissue_mask
from unisal.errors import DataError

SAMPLES = 8  # points per tile side where coverage is measured
SKIPPED_CLASSES = ("Ignore*", "Region*")  # QuPath's classes meaning "not a class"


@dataclass
class Region:
    """One class's polygon: an outer ring (n, 2) and its holes, level-0 px."""

    name: str
    outer: np.ndarray
    holes: list[np.ndarray] = field(default_factory=list)


def _rings(geometry: dict[str, Any]) -> list[list[Any]]:
    kind = geometry.get("type")
    coords = geometry.get("coordinates") or []
    if kind == "Polygon":
        return [coords]
    if kind == "MultiPolygon":
        return list(coords)
    if kind == "GeometryCollection":
        return [p for g in geometry.get("geometries") or [] for p in _rings(g)]
    return []


def _class_name(properties: dict[str, Any]) -> str | None:
    classification = properties.get("classification")
    if isinstance(classification, dict):
        name = classification.get("name")
        if isinstance(name, str):
            return name
        names = classification.get("names")  # a derived class: "Tumor: Positive"
        if isinstance(names, list) and names:
            return ": ".join(str(n) for n in names)
    if isinstance(classification, str):
        return classification
    return None


def read_regions(
    path: str | Path, *, objects: tuple[str, ...] = ("annotation",)
) -> tuple[list[Region], list[str]]:
    """The classified polygons of a QuPath GeoJSON file whose ``objectType`` is one of
    ``objects`` (a feature without one counts as an annotation), and notes on what was left
    out (other objects, unclassified ones, Ignore* classes, geometries without area);
    DataError for a file that is not GeoJSON."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not a GeoJSON file: {exc}") from None
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features") or []
    elif isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    elif isinstance(data, list):
        features = data
    else:
        raise DataError(f"{path} is not a GeoJSON FeatureCollection, Feature or list of features")
    regions: list[Region] = []
    unclassified = ignored = no_area = other = 0
    for feature in features:
        if not isinstance(feature, dict) or not isinstance(feature.get("geometry"), dict):
            no_area += 1
            continue
        properties = feature.get("properties") or {}
        if properties.get("objectType", "annotation") not in objects:
            other += 1
            continue
        name = _class_name(properties)
        if name is None:
            unclassified += 1
            continue
        if any(name.startswith(p.rstrip("*")) for p in SKIPPED_CLASSES):
            ignored += 1
            continue
        polygons = _rings(feature["geometry"])
        if not polygons:
            no_area += 1
        for rings in polygons:
            try:
                arrays = [np.asarray(r, np.float64)[:, :2] for r in rings]
            except (TypeError, ValueError, IndexError):
                raise DataError(f"{path}: a {name} polygon has malformed coordinates") from None
            if arrays and len(arrays[0]) >= 3:
                regions.append(Region(name, arrays[0], arrays[1:]))
    notes = []
    for n, what in (
        (other, f"object(s) other than {'/'.join(objects)} (detections, tiles, cells)"),
        (unclassified, "object(s) without a classification"),
        (ignored, "object(s) of an Ignore*/Region* class"),
        (no_area, "object(s) without a polygon (points, lines)"),
    ):
        if n:
            notes.append(f"{n} {what} left out")
    return regions, notes


def _inside(points: np.ndarray, region: Region) -> np.ndarray:
    from matplotlib.path import Path as Polygon

    inside = Polygon(region.outer).contains_points(points)
    for hole in region.holes:
        inside &= ~Polygon(hole).contains_points(points)
    return np.asarray(inside, bool)


def tile_points(boxes: np.ndarray, samples: int = SAMPLES) -> np.ndarray:
    """(n, samples², 2) level-0 points on a grid inside each box (n, 3: x, y, side)."""
    offsets = (np.arange(samples) + 0.5) / samples
    gx, gy = np.meshgrid(offsets, offsets)
    unit = np.stack([gx.ravel(), gy.ravel()], axis=1)  # (s², 2)
    return boxes[:, None, :2] + unit[None] * boxes[:, None, 2:3]


def tissue_at(slide: str, points: np.ndarray) -> np.ndarray:
    """Whether each level-0 point (..., 2) lies on tissue by the slide's mask."""
    handle = open_slide(slide)
    mask = tissue_mask(thumbnail(handle, slide))
    width, height = handle.dimensions
    h, w = mask.shape
    col = np.clip((points[..., 0] * w / width).astype(int), 0, w - 1)
    row = np.clip((points[..., 1] * h / height).astype(int), 0, h - 1)
    return np.asarray(mask[row, col], bool)


def coverage(
    boxes: np.ndarray, regions: Sequence[Region], classes: Sequence[str], on_tissue: np.ndarray
) -> np.ndarray:
    """(n, C) share of each tile's tissue points inside each class's regions (all points where
    a tile has no tissue point)."""
    points = tile_points(boxes)  # (n, s², 2)
    n, m = points.shape[:2]
    weight = np.where(on_tissue.any(axis=1, keepdims=True), on_tissue, True)  # (n, s²)
    out = np.zeros((n, len(classes)))
    flat = points.reshape(-1, 2)
    for k, name in enumerate(classes):
        covered = np.zeros(n * m, bool)
        for region in regions:
            if region.name != name:
                continue
            lo, hi = region.outer.min(axis=0), region.outer.max(axis=0)
            near = np.flatnonzero(np.all((flat >= lo) & (flat <= hi), axis=1))
            if len(near):
                covered[near] |= _inside(flat[near], region)
        out[:, k] = (covered.reshape(n, m) & weight).sum(axis=1) / weight.sum(axis=1)
    return out


@dataclass
class RegionLabels:
    """What regions say of a slide's tiles: ``labels`` (tile id -> class) and the tiles in
    conflict (tile id -> the classes covering it)."""

    labels: dict[str, str]
    conflicts: dict[str, list[str]]
    notes: list[str]


def labels_from_regions(
    tile_ids: Sequence[str], regions: Sequence[Region], *, threshold: float = 0.5
) -> RegionLabels:
    """Labels of the tiles (all of one slide) that ``regions`` cover past ``threshold``."""
    if not tile_ids:
        return RegionLabels({}, {}, [])
    classes = sorted({r.name for r in regions})
    slide = parse_tile_id(tile_ids[0])[0]
    downsamples = open_slide(slide).level_downsamples
    boxes = np.zeros((len(tile_ids), 3), np.float64)
    for k, item in enumerate(tile_ids):
        _, x, y, level, read, _ = parse_tile_id(item)
        boxes[k] = (x, y, round(read * float(downsamples[level])))
    share = coverage(boxes, regions, classes, tissue_at(slide, tile_points(boxes)))
    passed = share >= threshold
    labels, conflicts = {}, {}
    for k, item in enumerate(tile_ids):
        hits = [classes[c] for c in np.flatnonzero(passed[k])]
        if len(hits) == 1:
            labels[item] = hits[0]
        elif len(hits) > 1:
            conflicts[item] = hits
    return RegionLabels(labels, conflicts, [])


def regions_for(slide: str, regions: str | Path) -> Path | None:
    """The region file of ``slide``: ``regions`` itself when a file, else ``<slide name>.geojson``
    (or ``.json``) inside the folder ``regions``; None when the folder has none for it."""
    regions = Path(regions)
    if regions.is_file():
        return regions
    if not regions.is_dir():
        raise DataError(f"regions not found: {regions} (a GeoJSON file, or a folder of <slide>.geojson)")
    stem = Path(slide).stem
    for suffix in (".geojson", ".json"):
        if (regions / f"{stem}{suffix}").is_file():
            return regions / f"{stem}{suffix}"
    return None


__all__ = [
    "Region",
    "RegionLabels",
    "coverage",
    "labels_from_regions",
    "read_regions",
    "regions_for",
    "tile_points",
    "tissue_at",
]
