"""QuPath's GeoJSON, both ways: a project's tiles out (labels and predictions, one polygon per tile)
and region annotations in (``unisal.data.regions``: polygons with a classification -> labels of
the tiles they cover).

QuPath's conventions are in ``unisal.data.regions``: level-0 pixel coordinates, a
FeatureCollection of one image, ``objectType`` and ``classification`` (name and colour) in each
feature's properties.
"""

from __future__ import annotations

from typing import Any

from unisal.app.slidemap import class_colour
from unisal.data.regions import Region, RegionLabels, coverage, labels_from_regions, read_regions, tile_points


def tile_polygon(x: int, y: int, side: int) -> list[list[list[int]]]:
    """A tile's box as GeoJSON polygon coordinates (one closed ring, level-0 px)."""
    return [[[x, y], [x + side, y], [x + side, y + side], [x, y + side], [x, y]]]


def tile_feature(
    x: int,
    y: int,
    side: int,
    *,
    name: str,
    colour: tuple[int, int, int],
    object_type: str,
    extra: dict[str, Any],
) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": tile_polygon(x, y, side)},
        "properties": {
            "objectType": object_type,
            "classification": {"name": name, "color": list(colour)},
            "isLocked": False,
            **extra,
        },
    }


__all__ = [
    "Region",
    "RegionLabels",
    "class_colour",
    "coverage",
    "labels_from_regions",
    "read_regions",
    "tile_feature",
    "tile_points",
    "tile_polygon",
]
