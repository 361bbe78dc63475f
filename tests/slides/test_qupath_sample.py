"""A GeoJSON feature exported by QuPath itself reads as a region and labels the tiles it covers.

The sample is quoted from the QuPath project's own repository: qupath/qubalab,
`notebooks/Exploring objects.ipynb` at commit fe840e1d28aacef97b0efe746e188304b0c3d545 (cell 19's
printed output): an ellipse annotation drawn in QuPath, classified "Py4J", serialised by
QuPath's `toGeoJsonFeatureList` (its Java GeoJSON writer) and printed through Python's `geojson`
package (which sorted the keys; the values, including QuPath's `"isEllipse"`, are QuPath's).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from unisal.data.regions import coverage, read_regions

QUPATH_FEATURE = """{"geometry": {"coordinates": [[[18013, 15255], [18006.97, 15424.47], [17988.9, 15593.27], [17958.87, 15760.74], [17916.99, 15926.21], [17863.43, 16089.04], [17798.4, 16248.57], [17722.15, 16404.18], [17634.99, 16555.25], [17537.27, 16701.2], [17429.36, 16841.43], [17311.69, 16975.41], [17184.73, 17102.59], [17048.98, 17222.49], [16904.97, 17334.62], [16753.27, 17438.54], [16594.49, 17533.84], [16429.24, 17620.15], [16258.18, 17697.13], [16081.99, 17764.47], [15901.36, 17821.9], [15717, 17869.21], [15529.64, 17906.19], [15340.02, 17932.72], [15148.89, 17948.67], [14957, 17954], [14765.11, 17948.67], [14573.98, 17932.72], [14384.36, 17906.19], [14197, 17869.21], [14012.64, 17821.9], [13832.01, 17764.47], [13655.82, 17697.13], [13484.76, 17620.15], [13319.51, 17533.84], [13160.73, 17438.54], [13009.03, 17334.62], [12865.02, 17222.49], [12729.27, 17102.59], [12602.31, 16975.41], [12484.64, 16841.43], [12376.73, 16701.2], [12279.01, 16555.25], [12191.85, 16404.18], [12115.6, 16248.57], [12050.57, 16089.04], [11997.01, 15926.21], [11955.13, 15760.74], [11925.1, 15593.27], [11907.03, 15424.47], [11901, 15255], [11907.03, 15085.53], [11925.1, 14916.73], [11955.13, 14749.26], [11997.01, 14583.79], [12050.57, 14420.96], [12115.6, 14261.43], [12191.85, 14105.82], [12279.01, 13954.75], [12376.73, 13808.8], [12484.64, 13668.57], [12602.31, 13534.59], [12729.27, 13407.41], [12865.02, 13287.51], [13009.03, 13175.38], [13160.73, 13071.46], [13319.51, 12976.16], [13484.76, 12889.85], [13655.82, 12812.87], [13832.01, 12745.53], [14012.64, 12688.1], [14197, 12640.79], [14384.36, 12603.81], [14573.98, 12577.28], [14765.11, 12561.33], [14957, 12556], [15148.89, 12561.33], [15340.02, 12577.28], [15529.64, 12603.81], [15717, 12640.79], [15901.36, 12688.1], [16081.99, 12745.53], [16258.18, 12812.87], [16429.24, 12889.85], [16594.49, 12976.16], [16753.27, 13071.46], [16904.97, 13175.38], [17048.98, 13287.51], [17184.73, 13407.41], [17311.69, 13534.59], [17429.36, 13668.57], [17537.27, 13808.8], [17634.99, 13954.75], [17722.15, 14105.82], [17798.4, 14261.43], [17863.43, 14420.96], [17916.99, 14583.79], [17958.87, 14749.26], [17988.9, 14916.73], [18006.97, 15085.53], [18013, 15255]]], "isEllipse": true, "type": "Polygon"}, "id": "b23d6e95-ca13-4980-b29e-ef3f87db6c0a", "properties": {"classification": {"color": [132, 9, 12], "name": "Py4J"}, "isLocked": true, "name": "Hello from Python", "objectType": "annotation"}, "type": "Feature"}"""


def test_a_qupath_exported_ellipse_reads_as_one_classified_region(tmp_path: Path) -> None:
    for name, text in (
        ("feature.geojson", QUPATH_FEATURE),  # the feature as printed
        (
            "collection.geojson",
            json.dumps({"type": "FeatureCollection", "features": [json.loads(QUPATH_FEATURE)]}),
        ),
        (
            "list.json",
            json.dumps([json.loads(QUPATH_FEATURE)]),
        ),  # exportObjectsToGeoJson without FEATURE_COLLECTION
    ):
        (tmp_path / name).write_text(text)
        regions, notes = read_regions(tmp_path / name)
        assert notes == [] and len(regions) == 1
        (region,) = regions
        assert region.name == "Py4J" and region.outer.shape == (101, 2) and region.holes == []
        # the ellipse: centre (14957, 15255), semi-axes 1056 (x) and 2699 (y), level-0 px
        assert np.allclose(region.outer.min(axis=0), [11901, 12556]) and np.allclose(
            region.outer.max(axis=0), [18013, 17954]
        )


def test_the_qupath_ellipse_covers_the_tiles_inside_it(tmp_path: Path) -> None:
    (tmp_path / "sample.geojson").write_text(QUPATH_FEATURE)
    (region,), _ = read_regions(tmp_path / "sample.geojson")
    side = 224
    boxes = np.array(
        [
            [14957 - side // 2, 15255 - side // 2, side],  # the centre: inside
            [11901 - side // 2, 15255 - side // 2, side],  # on the left end of the major axis: half
            [11000, 15255, side],  # left of the ellipse: outside
            [14957, 12000, side],  # above it: outside
        ],
        np.float64,
    )
    share = coverage(boxes, [region], ["Py4J"], np.ones((4, 64), bool))[:, 0]
    assert share[0] == 1.0 and 0.3 < share[1] < 0.6 and share[2] == 0.0 and share[3] == 0.0
