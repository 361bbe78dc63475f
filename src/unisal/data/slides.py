"""Whole-slide images: opening one (OpenSlide), its resolution, a tissue mask from its thumbnail,
and the tiles of a slide (``SlideTiles``, an item source whose pixels are read from the slide on
demand). A slide is never read whole: thumbnails and regions only.

OpenSlide (``openslide-python`` with the ``openslide-bin`` wheel) reads Aperio SVS, Hamamatsu
NDPI/VMS, MIRAX, Leica SCN, Philips TIFF, Ventana BIF, Sakura SVSlide, DICOM WSI and generic
tiled pyramidal TIFF; a flat (untiled) RGB TIFF, which OpenSlide refuses, is read through
``tifffile`` (``unisal.data.flat_tiff``: memory-mapped when uncompressed).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from unisal.data.images import BadImageError
from unisal.data.items import ITEM_SOURCES, MemberItems, SourceKind
from unisal.errors import SlideError

SLIDE_SUFFIXES = frozenset(
    {".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".mrxs", ".scn", ".bif", ".svslide", ".dcm"}
)
TILE_MEMBER = "::tile/"  # a tile's id: <slide>::tile/<x>,<y>,<level>,<read size>,<size>
_open_lock = threading.Lock()


def is_slide_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in SLIDE_SUFFIXES and not path.name.startswith(".")


@functools.lru_cache(maxsize=8)
def _opened(path: str) -> Any:
    import openslide

    return openslide.OpenSlide(path)


@functools.lru_cache(maxsize=2)  # a compressed flat TIFF is held decoded: keep few
def _flat(path: str) -> Any:
    from unisal.data.flat_tiff import FlatTiff

    return FlatTiff(path)


def open_slide(path: str | Path) -> Any:
    """An ``openslide.OpenSlide`` (kept open: at most 8 at once); SlideError naming the file when
    it is missing, not a slide, or damaged."""
    import openslide

    path = Path(path)
    if not path.is_file():
        raise SlideError(f"slide not found: {path}")
    try:
        with _open_lock:
            return _opened(str(path.resolve()))
    except openslide.OpenSlideUnsupportedFormatError:
        if path.suffix.lower() in (".tif", ".tiff"):  # a flat TIFF: tifffile reads it
            return _flat(str(path.resolve()))
        raise SlideError(f"{path} is not a slide OpenSlide can read (format not recognised)") from None
    except (openslide.OpenSlideError, OSError, ValueError) as exc:
        raise SlideError(f"cannot read slide {path}: {exc} (truncated or damaged?)") from None


def slide_mpp(slide: Any, path: str | Path, assume: float | None = None) -> float:
    """Microns per level-0 pixel: the slide's own (``openslide.mpp-x``), else its objective power
    (20x taken as 0.5 mpp), else ``assume``; SlideError when none is known."""
    value = slide.properties.get("openslide.mpp-x")
    if value:
        return float(value)
    power = slide.properties.get("openslide.objective-power")
    if power:
        return 10.0 / float(power)
    if assume:
        return float(assume)
    raise SlideError(
        f"{path} records neither its resolution (mpp) nor its objective power; "
        "give it with --assume-mpp (e.g. 0.25 for a 40x scan, 0.5 for 20x)"
    )


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of uint8 values (N,): the split maximising the between-class variance."""
    hist = np.bincount(np.asarray(values, np.uint8).ravel(), minlength=256).astype(np.float64)
    weight = np.cumsum(hist)
    total = weight[-1]
    if total == 0:
        return 0.0
    mean = np.cumsum(hist * np.arange(256))
    w0, w1 = weight[:-1], total - weight[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean[-1] * w0 / total - mean[:-1]) ** 2 * total / (w0 * w1)
    between = np.nan_to_num(between)
    return float(np.argmax(between))


def tissue_mask(thumbnail: np.ndarray, *, min_saturation: int = 20, min_area: float = 0.0005) -> np.ndarray:
    """Tissue of a thumbnail (H, W, 3) uint8 -> bool (H, W): saturation above Otsu's threshold
    (and above ``min_saturation``: white glass and grey background are unsaturated), closed,
    holes filled, and components smaller than ``min_area`` of the thumbnail removed."""
    from scipy import ndimage

    saturation = np.asarray(Image.fromarray(thumbnail).convert("HSV"))[:, :, 1]
    threshold = max(otsu_threshold(saturation), float(min_saturation))
    mask = saturation > threshold
    mask = ndimage.binary_closing(mask, structure=np.ones((3, 3)), iterations=2)
    mask = ndimage.binary_fill_holes(mask)
    labels, n = ndimage.label(mask)
    if n:
        sizes = np.bincount(labels.ravel())
        keep = sizes >= max(1.0, min_area * mask.size)
        keep[0] = False
        mask = keep[labels]
    return np.asarray(mask, bool)


@dataclass(frozen=True)
class TileGrid:
    """How a slide is cut: level-0 tile side ``step``, read ``read`` px at ``level``, resized to
    ``size`` px (``mpp`` µm per output pixel)."""

    level: int
    read: int
    size: int
    step: int
    mpp: float


def tile_grid(
    slide: Any,
    path: str | Path,
    *,
    size: int,
    mpp: float | None,
    magnification: float | None,
    assume_mpp: float | None,
) -> TileGrid:
    """The grid for tiles of ``size`` px at ``mpp`` (or at ``magnification``, 20x = 0.5 mpp);
    SlideError when the slide is coarser than asked (a tile would be upsampled)."""
    base = slide_mpp(slide, path, assume_mpp)
    target = mpp if mpp is not None else (10.0 / magnification if magnification else base)
    factor = target / base  # level-0 px per output px
    if factor < 0.95:
        raise SlideError(
            f"{path} is scanned at {base:.3g} mpp: it cannot give tiles at {target:.3g} mpp "
            f"(finer than its full resolution); ask for {base:.3g} mpp or coarser"
        )
    factor = max(factor, 1.0)
    level = int(slide.get_best_level_for_downsample(factor + 1e-6))
    downsample = float(slide.level_downsamples[level])
    return TileGrid(
        level, max(1, round(size * factor / downsample)), size, max(1, round(size * factor)), target
    )


def thumbnail(slide: Any, path: str | Path, longest: int = 1024) -> np.ndarray:
    """The slide at most ``longest`` px on its long side, RGB uint8 (h, w, 3)."""
    try:
        return np.asarray(slide.get_thumbnail((longest, longest)).convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - OpenSlide's read errors: a damaged slide
        raise SlideError(f"cannot read slide {path}: {exc} (truncated or damaged?)") from None


def tile_tissue(
    mask: np.ndarray, dims: tuple[int, int], step: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Level-0 origins (x, y) of every whole tile of side ``step`` in a slide of ``dims`` (W, H),
    and the tissue fraction of each from ``mask`` (h, w) (an integral image: O(tiles))."""
    width, height = dims
    xs, ys = np.arange(0, width - step + 1, step), np.arange(0, height - step + 1, step)
    if len(xs) == 0 or len(ys) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    h, w = mask.shape
    integral = np.zeros((h + 1, w + 1))
    integral[1:, 1:] = mask.astype(np.float64).cumsum(0).cumsum(1)
    gx, gy = np.meshgrid(xs, ys)
    x0 = np.clip(np.floor(gx * w / width).astype(int), 0, w - 1)
    y0 = np.clip(np.floor(gy * h / height).astype(int), 0, h - 1)
    x1 = np.clip(np.ceil((gx + step) * w / width).astype(int), x0 + 1, w)
    y1 = np.clip(np.ceil((gy + step) * h / height).astype(int), y0 + 1, h)
    inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    fraction = inside / ((x1 - x0) * (y1 - y0))
    return gx.ravel().astype(np.int64), gy.ravel().astype(np.int64), fraction.ravel()


def tile_id(slide: str, x: int, y: int, level: int, read: int, size: int) -> str:
    return f"{slide}{TILE_MEMBER}{x},{y},{level},{read},{size}"


def parse_tile_id(item_id: str) -> tuple[str, int, int, int, int, int]:
    """``s.svs::tile/x,y,level,read,size`` -> (``s.svs``, x, y, level, read, size)."""
    slide, sep, member = item_id.rpartition(TILE_MEMBER)
    parts = member.split(",")
    if not sep or len(parts) != 5:
        raise ValueError(f"{item_id!r} is not a tile id <slide>::tile/<x>,<y>,<level>,<read>,<size>")
    x, y, level, read, size = (int(p) for p in parts)
    return slide, x, y, level, read, size


@dataclass(frozen=True)
class SlideTiles(MemberItems):
    """Tiles of slides, read from the slide on demand (an item source, kind ``tile``)."""

    members: tuple[str, ...]
    kind: str = "tile"

    def read(self, i: int) -> np.ndarray:
        item_id = self.members[i]
        try:
            slide, x, y, level, read, size = parse_tile_id(item_id)
            region = open_slide(slide).read_region((x, y), level, (read, read)).convert("RGB")
        except (SlideError, ValueError, OSError) as exc:
            raise BadImageError(item_id, f"cannot read the tile: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - OpenSlide's read errors
            raise BadImageError(item_id, f"cannot read the tile from the slide: {exc}") from exc
        if read != size:
            region = region.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
        return np.asarray(region)

    def holder(self, i: int) -> str:
        return self.members[i].rpartition(TILE_MEMBER)[0]

    def content_sha1(self, i: int) -> str:
        return ""  # a tile has no file of its own: caches are keyed by the slide's state


@dataclass(frozen=True)
class TileBox:
    """Where a tile lies on its slide: level-0 origin ``(x, y)`` and side ``step`` (px)."""

    slide: str
    x: int
    y: int
    step: int
    level: int
    read: int


def tile_box(item_id: str) -> TileBox:
    """The level-0 box of a tile id (the slide is opened for its level's downsample)."""
    slide, x, y, level, read, _ = parse_tile_id(item_id)
    downsample = float(open_slide(slide).level_downsamples[level])
    return TileBox(slide, x, y, max(1, round(read * downsample)), level, read)


def tile_context(
    item_id: str, *, around: int = 1, outline: tuple[int, int, int] = (0, 200, 255)
) -> np.ndarray:
    """The region around a tile at the tile's own level (``around`` tile sides on every side),
    the tile outlined, RGB uint8 (s, s, 3) with s = (2 * around + 1) * the tile's read size;
    outside the slide is white."""
    from PIL import ImageDraw

    box = tile_box(item_id)
    slide = open_slide(box.slide)
    ds = float(slide.level_downsamples[box.level])
    side = (2 * around + 1) * box.read
    x0, y0 = box.x - round(around * box.read * ds), box.y - round(around * box.read * ds)
    try:
        region = slide.read_region((x0, y0), box.level, (side, side))
    except Exception as exc:  # noqa: BLE001 - OpenSlide's read errors: a damaged slide
        raise SlideError(f"cannot read slide {box.slide}: {exc} (truncated or damaged?)") from None
    white = Image.new("RGBA", region.size, (255, 255, 255, 255))
    picture = Image.alpha_composite(white, region).convert("RGB")  # outside the slide: transparent
    lo, hi = around * box.read, (around + 1) * box.read - 1
    ImageDraw.Draw(picture).rectangle((lo - 2, lo - 2, hi + 2, hi + 2), outline=outline, width=3)
    return np.asarray(picture)


def slide_overview(
    item_id: str, *, longest: int = 512, colour: tuple[int, int, int] = (0, 200, 255)
) -> np.ndarray:
    """The tile's slide as a thumbnail (at most ``longest`` px) with the tile's place marked."""
    from PIL import ImageDraw

    box = tile_box(item_id)
    slide = open_slide(box.slide)
    picture = Image.fromarray(thumbnail(slide, box.slide, longest))
    scale = picture.width / slide.dimensions[0]
    x0, y0 = box.x * scale, box.y * scale
    x1, y1 = (box.x + box.step) * scale, (box.y + box.step) * scale
    pad = max(3.0, (x1 - x0) * 0.5)  # small tiles still get a visible mark
    ImageDraw.Draw(picture).rectangle((x0 - pad, y0 - pad, x1 + pad, y1 + pad), outline=colour, width=2)
    return np.asarray(picture)


ITEM_SOURCES.register("tile")(SourceKind(lambda i: TILE_MEMBER in i, lambda ids: SlideTiles(tuple(ids))))
