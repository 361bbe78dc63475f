"""Synthetic slides for the tests: tiled, zlib-compressed pyramidal TIFFs (levels 1, 1/4, 1/16)
with a known resolution and tissue of known shape and colour, which OpenSlide reads as generic
TIFF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

TISSUE = (180, 60, 140)  # the disc's purple
TUMOUR = (120, 40, 150)  # two_tissues(): a dark purple disc ...
STROMA = (235, 120, 170)  # ... and a pink band
DISC = (1000, 1500, 700)  # two_tissues(): the disc's centre (x, y) and radius, level-0 px
BAND = (2200, 600, 3600, 2400)  # two_tissues(): the band's x0, y0, x1, y1, level-0 px


def write_pyramid(path: Path, image: np.ndarray, mpp: float | None) -> Path:
    with tifffile.TiffWriter(path) as tif:
        for k, level in enumerate([image, image[::4, ::4].copy(), image[::16, ::16].copy()]):
            extra = {"resolution": (1e4 / (mpp * 4**k),) * 2, "resolutionunit": "CENTIMETER"} if mpp else {}
            tif.write(
                level, tile=(256, 256), photometric="rgb", compression="zlib", subfiletype=1 if k else 0,
                **extra,
            )  # fmt: skip
    return path


def pyramid(
    path: Path, *, width: int = 4000, height: int = 3000, mpp: float | None = 0.5, disc: bool = True
) -> Path:
    """White glass with one purple disc of tissue (centre (1200, 1500), radius 600 level-0 px)
    when ``disc``."""
    image = np.full((height, width, 3), 242, np.uint8)
    if disc:
        yy, xx = np.ogrid[:height, :width]
        image[(yy - 1500) ** 2 + (xx - 1200) ** 2 < 600**2] = TISSUE
    return write_pyramid(path, image, mpp)


def two_tissues(path: Path, *, mpp: float = 0.5, seed: int = 0) -> Path:
    """4,000 x 3,000 px of glass with two kinds of tissue: a dark purple disc (``DISC``) and a
    pink band (``BAND``), each with a little noise so that tiles differ."""
    rng = np.random.default_rng(seed)
    image = np.full((3000, 4000, 3), 242, np.uint8)
    yy, xx = np.ogrid[:3000, :4000]
    cx, cy, r = DISC
    image[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = TUMOUR
    x0, y0, x1, y1 = BAND
    image[y0:y1, x0:x1] = STROMA
    noise = rng.integers(-12, 13, size=image.shape, dtype=np.int16)
    tissue = image[:, :, 1] != 242
    image = np.where(tissue[:, :, None], np.clip(image + noise, 0, 255), image).astype(np.uint8)
    return write_pyramid(path, image, mpp)
