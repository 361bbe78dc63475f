"""Cutting slides into a tile table: per slide a tissue mask from its thumbnail, a grid at the
asked resolution, and the tiles whose tissue fraction passes; resumable slide by slide.

A tile table (CSV) has one row per tile: ``slide`` (its path, relative to the table's folder where
it lies under it), ``x``, ``y`` (level-0 pixels), ``level``, ``read_size`` (pixels read at that
level), ``size`` (pixels of the tile), ``mpp``, ``tissue`` (fraction), ``group`` (the slide, or
its patient), and optionally ``label``. The group of a tile is its slide's, so that no split
crosses a slide.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from unisal.data.slides import is_slide_file, open_slide, thumbnail, tile_grid, tile_tissue, tissue_mask
from unisal.errors import SlideError
from unisal.events import Task, message
from unisal.io import read_csv_rows, write_csv_atomic, write_json_atomic

COLUMNS = ["slide", "x", "y", "level", "read_size", "size", "mpp", "tissue", "group"]


@dataclass(frozen=True)
class TilingSettings:
    size: int = 224
    mpp: float | None = 0.5
    magnification: float | None = None
    tissue_threshold: float = 0.5  # least tissue fraction of a kept tile
    assume_mpp: float | None = None  # for slides that record no resolution
    thumbnail: int = 1024  # long side of the thumbnail the mask is made on


def find_slides(paths: list[str | Path]) -> list[Path]:
    """The slides named, and those inside named folders (recursively, sorted); SlideError when a
    path does not exist or a folder holds none."""
    out: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if is_slide_file(p))
            if not found:
                raise SlideError(f"no slides (.mrxs, .ndpi, .svs, .tif, ...) in {path}")
            out += found
        elif path.is_file():
            out.append(path)
        else:
            raise SlideError(f"slide or folder not found: {path}")
    return list(dict.fromkeys(p.resolve() for p in out))


def read_patients(csv_path: str | Path) -> dict[str, str]:
    """``slide,patient`` rows -> {slide file name or stem: patient}."""
    fields, rows = read_csv_rows(csv_path)
    if "slide" not in fields or "patient" not in fields:
        raise SlideError(f"{csv_path} must have columns 'slide' and 'patient'; got {fields}")
    return {r["slide"].strip(): r["patient"].strip() for r in rows if (r["slide"] or "").strip()}


def tile_slide(path: Path, settings: TilingSettings) -> tuple[list[list[object]], np.ndarray, np.ndarray]:
    """The rows (without slide and group) of one slide's kept tiles, its thumbnail and its mask."""
    slide = open_slide(path)
    grid = tile_grid(
        slide, path, size=settings.size, mpp=settings.mpp, magnification=settings.magnification,
        assume_mpp=settings.assume_mpp,
    )  # fmt: skip
    thumb = thumbnail(slide, path, settings.thumbnail)
    mask = tissue_mask(thumb)
    xs, ys, fraction = tile_tissue(mask, slide.dimensions, grid.step)
    keep = fraction >= settings.tissue_threshold
    rows: list[list[object]] = [
        [int(x), int(y), grid.level, grid.read, grid.size, round(grid.mpp, 4), round(float(f), 4)]
        for x, y, f in zip(xs[keep], ys[keep], fraction[keep], strict=True)
    ]
    return rows, thumb, mask


def mask_picture(thumb: np.ndarray, mask: np.ndarray) -> Image.Image:
    """The thumbnail with the tissue mask's outside greyed and its edge drawn."""
    from scipy import ndimage

    out = thumb.astype(np.float32)
    out[~mask] = out[~mask] * 0.35 + 255 * 0.65 * np.array([0.8, 0.8, 0.8])
    edge = mask & ~ndimage.binary_erosion(mask, iterations=2)
    out[edge] = (0, 160, 0)
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))


def _relative(path: Path, folder: Path) -> str:
    try:
        return path.relative_to(folder.resolve()).as_posix()
    except ValueError:
        return str(path)


def tile_slides(
    paths: list[str | Path],
    out: str | Path,
    settings: TilingSettings,
    *,
    patients: dict[str, str] | None = None,
    masks: str | Path | None = None,
) -> dict[str, int]:
    """Write the tile table ``out`` for every slide; returns tiles per slide (by path).

    Each finished slide's rows go to ``<out>.parts/`` first, so that a killed run, started again
    with the same settings, skips the slides it finished; the table is written at the end, whole.
    A slide without tissue is reported and gives no tile; SlideError when no slide gives one.
    """
    out = Path(out)
    slides = find_slides(paths)
    parts = out.with_name(out.name + ".parts")
    record = {"settings": asdict(settings), "slides": [str(s) for s in slides]}
    settings_file = parts / "settings.json"
    if parts.is_dir() and (not settings_file.is_file() or json.loads(settings_file.read_text()) != record):
        shutil.rmtree(parts)  # another run's: its parts do not apply
    parts.mkdir(parents=True, exist_ok=True)
    write_json_atomic(settings_file, record)
    by_slide: dict[Path, list[list[object]]] = {}
    empty: list[str] = []
    with Task("tiling slides", len(slides), unit="slide", long=True) as task:
        for slide in slides:
            part = parts / (hashlib.sha1(str(slide).encode()).hexdigest()[:16] + ".csv")
            tiles: list[list[object]]
            if part.is_file():
                _, done = read_csv_rows(part)
                tiles = [[r[c] for c in COLUMNS[1:-1]] for r in done]
            else:
                tiles, thumb, mask = tile_slide(slide, settings)
                write_csv_atomic(part, COLUMNS[1:-1], tiles)
                if masks is not None:
                    Path(masks).mkdir(parents=True, exist_ok=True)
                    mask_picture(thumb, mask).save(Path(masks) / f"{slide.stem}-tissue.png")
            by_slide[slide] = tiles
            if not tiles:
                empty.append(slide.name)
                message(
                    f"{slide.name}: no tile has {settings.tissue_threshold:.0%} tissue (a slide without tissue?)"
                )
            task.advance(1)
    if len(empty) == len(slides):
        raise SlideError(
            f"no tiles: {', '.join(empty[:5])} show no tissue at --tissue-threshold {settings.tissue_threshold}; "
            "lower it, or check the slides"
        )
    patients = patients or {}
    table: list[list[object]] = []
    for slide, tiles in by_slide.items():
        group = patients.get(slide.name) or patients.get(slide.stem) or slide.stem
        table += [[_relative(slide, out.parent), *tile, group] for tile in tiles]
    write_csv_atomic(out, COLUMNS, table)
    shutil.rmtree(parts, ignore_errors=True)
    return {str(slide): len(tiles) for slide, tiles in by_slide.items()}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (MB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


__all__ = [
    "COLUMNS",
    "TilingSettings",
    "find_slides",
    "mask_picture",
    "peak_rss_mb",
    "read_patients",
    "tile_slide",
    "tile_slides",
]
