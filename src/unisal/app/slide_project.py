"""A labelling project on whole-slide images: ``project init DIR --slides FOLDER`` tiles the slides
(``unisal.data.tiling``, resumable inside DIR until the database exists) and makes a project of
their tiles; the tile table stays beside the database (``DIR/tiles.csv``: tissue fractions, for
maps and slide-level shares)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unisal.app.exchange import IMPORTER
from unisal.app.geojson import labels_from_regions, read_regions, tile_feature, tile_polygon
from unisal.app.project import TILING_DIR, ProjectPlan, check_new_folder, open_project, plan_catalogue
from unisal.app.slidemap import class_colour, find_slide, slide_of, slides_in
from unisal.app.store import ProjectError, ProjectStore, check_class_names
from unisal.data.slides import TILE_MEMBER, open_slide, parse_tile_id
from unisal.data.tile_table import read_tile_table
from unisal.data.tiling import TilingSettings, tile_slides
from unisal.events import message


def plan_slide_project(
    folder: str | Path,
    *,
    slides: str | Path,
    classes: list[str] | None,
    tiling: TilingSettings,
    patients: dict[str, str] | None = None,
    test_csv: str | Path | None = None,
    workers: int = 4,
) -> ProjectPlan:
    """Tile ``slides`` (a folder of slides, or one slide) into ``folder``'s tiling area and plan a
    project of the tiles; the image root is the slides' folder, so a tile's stored path is
    ``<slide path under it>::tile/<x>,<y>,<level>,<read>,<size>``.

    Args:
        classes: the class names in shortcut order (needed: tiles carry no labels).
        patients: ``{slide name or stem: patient}``: a patient's tiles form one group.
        test_csv: ``path,label`` rows of tiles held out (with every tile of their group).
    """
    if not classes:
        raise ProjectError(
            '--classes is needed with --slides (tiles carry no class names), e.g. --classes "TUM,STR,NORM"'
        )
    check_class_names(classes)
    check_new_folder(folder)
    slides = Path(slides).resolve()
    if not slides.exists():
        raise ProjectError(f"slide or folder not found: {slides}")
    table = Path(folder) / TILING_DIR / "tiles.csv"
    counts = tile_slides([slides], table, tiling, patients=patients)
    catalogue = read_tile_table(table)
    catalogue.root = str(slides if slides.is_dir() else slides.parent)
    message(f"{sum(counts.values())} tiles of {len(counts)} slide(s)")
    plan = plan_catalogue(catalogue, classes=classes, test_csv=test_csv, workers=workers)
    plan.tile_table = str(table)
    return plan


# ---- QuPath GeoJSON
def project_tiles(store: ProjectStore) -> dict[str, str]:
    """Absolute tile id -> stored path, of every tile of the project."""
    root = Path(store.settings()["image_root"])
    return {str(root / r["path"]): r["path"] for r in store.images() if TILE_MEMBER in r["path"]}


def pick_slide(ids: list[str], slide: str | None, file: Path | None = None) -> str:
    """The slide meant: ``slide`` by name; else the one whose name the file bears (QuPath
    scripts name an export after its image); else the only one."""
    slides = slides_in(ids)
    if not slides:
        raise ProjectError("this project holds no tiles of slides (made with `project init --images`)")
    if slide is not None:
        return find_slide(ids, slide)
    if file is not None:
        for name, path in slides.items():
            if file.stem == name or file.stem.startswith(name + "."):
                return path
    if len(slides) == 1:
        return next(iter(slides.values()))
    shown = ", ".join(sorted(slides)[:10])
    raise ProjectError(f"this project has {len(slides)} slides ({shown}): say which with --slide NAME")


def export_geojson(folder: str | Path, out: str | Path, *, slide: str | None = None) -> dict[str, int]:
    """Write one slide's tiles as a QuPath GeoJSON FeatureCollection (level-0 px): labelled tiles
    as annotations classified by their label, the others as detections classified by the latest
    model's prediction (with its confidence) where a round has trained one, else unclassified
    tiles. Returns counts of each."""
    from unisal.app.files import protected_outputs
    from unisal.app.map_sources import project_view
    from unisal.app.slidemap import slide_maps
    from unisal.io import atomic_path, check_output_file

    store = open_project(folder)
    check_output_file(out, protected=protected_outputs(folder, store))
    tiles = project_tiles(store)
    path = pick_slide(list(tiles), slide)
    names = store.class_names()
    labels = store.labels()
    trained = any(r["status"] == "done" and r["checkpoint"] for r in store.rounds())
    predicted: dict[str, tuple[int, float]] = {}
    if trained:
        view = project_view(folder)
        (m,) = slide_maps(view, [path])
        mine = [i for i in view.ids if slide_of(i) == path]
        predicted = {i: (int(p), float(c)) for i, p, c in zip(mine, m.predicted, m.confidence, strict=True)}
    downsamples = open_slide(path).level_downsamples
    features = []
    counts = {"labelled": 0, "predicted": 0, "unclassified": 0}
    for item, stored in tiles.items():
        if slide_of(item) != path:
            continue
        _, x, y, level, read, _ = parse_tile_id(item)
        side = max(1, round(read * float(downsamples[level])))
        extra: dict[str, Any] = {"unisal": {"tile": stored}}
        if stored in labels:
            name = labels[stored][0]
            extra["unisal"] |= {"label": name, "annotator": labels[stored][1]}
            if item in predicted:
                extra["unisal"]["predicted"] = names[predicted[item][0]]
            features.append(tile_feature(
                x, y, side, name=name, colour=class_colour(names.index(name)), object_type="annotation", extra=extra,
            ))  # fmt: skip
            counts["labelled"] += 1
        elif item in predicted:
            k, confidence = predicted[item]
            extra["measurements"] = {"unisal confidence": round(confidence, 4)}
            features.append(tile_feature(
                x, y, side, name=names[k], colour=class_colour(k), object_type="detection", extra=extra,
            ))  # fmt: skip
            counts["predicted"] += 1
        else:
            features.append({
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": tile_polygon(x, y, side)},
                "properties": {"objectType": "tile", "isLocked": False, **extra},
            })  # fmt: skip
            counts["unclassified"] += 1
    with atomic_path(out) as tmp:
        Path(tmp).write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return counts


@dataclass
class ImportReport:
    slide: str
    labelled: int  # tiles the regions label
    changed: int  # labels written that differ from before
    conflicts: dict[str, list[str]]  # stored path -> the classes covering it past the threshold
    notes: list[str]


def import_regions(
    folder: str | Path,
    file: str | Path,
    *,
    slide: str | None = None,
    threshold: float = 0.5,
    annotator: str = IMPORTER,
    objects: tuple[str, ...] = ("annotation",),
) -> ImportReport:
    """Label one slide's tiles from QuPath region annotations (``objects``: the object types
    read; detections, e.g. a model's tiles, are not labels). All or nothing: an unknown class,
    or a held-out tile whose label would change, writes nothing."""
    from unisal.app.exchange import check_held_out_unchanged

    file = Path(file)
    store = open_project(folder)
    regions, notes = read_regions(file, objects=objects)
    if not regions:
        raise ProjectError(f"{file} holds no classified polygons ({'; '.join(notes) or 'no objects'})")
    names = store.class_names()
    unknown = sorted({r.name for r in regions} - set(names))
    if unknown:
        raise ProjectError(
            f"nothing imported: {file} has class(es) {', '.join(map(repr, unknown[:5]))} that are not the "
            f"project's ({', '.join(names)}); rename them in QuPath or start a project with those classes"
        )
    tiles = project_tiles(store)
    path = pick_slide(list(tiles), slide, file)
    mine = [i for i in tiles if slide_of(i) == path]
    found = labels_from_regions(mine, regions, threshold=threshold)
    rows = [(tiles[i], name) for i, name in found.labels.items()]
    conflicts = {tiles[i]: classes for i, classes in found.conflicts.items()}
    if not rows:
        raise ProjectError(
            f"nothing imported: no tile of {Path(path).name} is covered by a region past --threshold {threshold}"
            + (f" ({len(conflicts)} in conflict)" if conflicts else "")
        )
    check_held_out_unchanged(store, rows)
    changed = store.import_labels(rows, annotator)
    return ImportReport(Path(path).stem, len(rows), changed, conflicts, notes)


__all__ = [
    "ImportReport",
    "export_geojson",
    "import_regions",
    "pick_slide",
    "plan_slide_project",
    "project_tiles",
]
