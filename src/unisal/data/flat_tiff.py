"""Flat (untiled, one-level) RGB TIFFs, which OpenSlide refuses, read through ``tifffile`` with the
part of OpenSlide's interface that tiling, tiles and maps use.

An uncompressed flat TIFF is memory-mapped: a region or a thumbnail touches only its rows, so a
large one costs no more memory than a pyramid. A compressed one must be decoded whole: it is
read when its pixels fit in ``MAX_DECODED`` bytes, else refused with the way out (convert it to
a tiled pyramid).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from unisal.errors import SlideError

MAX_DECODED = 1 << 30  # a compressed flat TIFF decoded whole, at most this many bytes


def _mpp(page: Any) -> float | None:
    """Microns per pixel from the page's XResolution and ResolutionUnit (cm or inch), if any."""
    tags = page.tags
    if "XResolution" not in tags:
        return None
    num, den = tags["XResolution"].value
    unit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2
    per_unit = num / den if den else 0.0
    if per_unit <= 0 or unit not in (2, 3):
        return None
    microns = 25_400.0 if unit == 2 else 10_000.0  # inch, centimetre
    mpp = microns / per_unit
    return mpp if 0.01 < mpp < 100 else None  # 72 dpi and such are screen defaults, not scans


class FlatTiff:
    """A flat RGB(A) TIFF with OpenSlide's ``dimensions``, levels, ``properties``,
    ``read_region`` and ``get_thumbnail``."""

    def __init__(self, path: str | Path):
        import tifffile

        self.path = str(path)
        try:
            with tifffile.TiffFile(self.path) as tif:
                page = tif.pages.first
                shape, dtype, mpp = page.shape, page.dtype, _mpp(page)
                mappable = page.is_memmappable
        except (tifffile.TiffFileError, OSError, ValueError) as exc:
            raise SlideError(f"cannot read {path}: {exc} (truncated or damaged?)") from None
        if len(shape) != 3 or shape[2] not in (3, 4) or dtype != np.uint8:
            raise SlideError(
                f"{path} is not an 8-bit RGB image (shape {shape}, {dtype}): not a slide unisal reads"
            )
        self.pixels: np.ndarray
        if mappable:
            self.pixels = tifffile.memmap(self.path, page=0, mode="r")
        elif shape[0] * shape[1] * shape[2] <= MAX_DECODED:
            self.pixels = tifffile.imread(self.path, key=0)
        else:
            raise SlideError(
                f"{path} is a flat compressed TIFF of {shape[1]} x {shape[0]} px: too large to decode whole; "
                "convert it to a tiled pyramid, e.g. `vips tiffsave in.tif out.tif --tile --pyramid --compression jpeg`"
            )
        self.dimensions = (int(shape[1]), int(shape[0]))
        self.level_count = 1
        self.level_dimensions = (self.dimensions,)
        self.level_downsamples = (1.0,)
        self.properties: dict[str, str] = {"openslide.vendor": "flat-tiff (tifffile)"}
        if mpp is not None:
            self.properties["openslide.mpp-x"] = self.properties["openslide.mpp-y"] = f"{mpp:.6g}"

    def get_best_level_for_downsample(self, downsample: float) -> int:
        return 0

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> Image.Image:
        """RGBA region at level 0; outside the image transparent, as OpenSlide's."""
        x, y = location
        w, h = size
        out = np.zeros((h, w, 4), np.uint8)
        width, height = self.dimensions
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
        if x1 > x0 and y1 > y0:
            part = np.asarray(self.pixels[y0:y1, x0:x1])
            out[y0 - y : y1 - y, x0 - x : x1 - x, :3] = part[:, :, :3]
            out[y0 - y : y1 - y, x0 - x : x1 - x, 3] = part[:, :, 3] if part.shape[2] == 4 else 255
        return Image.fromarray(out, "RGBA")

    def get_thumbnail(self, size: tuple[int, int]) -> Image.Image:
        """The image shrunk to fit ``size``: every k-th row and column first (k = the whole
        downsample, so only those rows are read), then resized."""
        width, height = self.dimensions
        scale = max(width / size[0], height / size[1], 1.0)
        step = max(1, int(scale))
        sampled = np.asarray(self.pixels[::step, ::step, :3])
        target = (max(1, round(width / scale)), max(1, round(height / scale)))
        return Image.fromarray(np.ascontiguousarray(sampled)).resize(target, Image.Resampling.BILINEAR)


__all__ = ["MAX_DECODED", "FlatTiff"]
