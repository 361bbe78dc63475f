"""Decode any common image file into an RGB uint8 array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from unisal.errors import BadImageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"})


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _to_uint8_rgb(array: np.ndarray) -> np.ndarray:
    """Scale any integer/float depth to uint8 and any channel layout to (H, W, 3)."""
    if array.dtype == np.uint8:
        out = array
    elif np.issubdtype(array.dtype, np.integer):
        # 16-bit scans use the full range of their type; map it linearly. Pillow may hand a
        # 16-bit PNG over as 32-bit mode "I": values that fit 16 bits are 16-bit data.
        top = np.iinfo(array.dtype).max
        if array.dtype.itemsize > 2 and array.size and array.min() >= 0 and array.max() <= 65535:
            top = 65535
        out = (np.clip(array, 0, top).astype(np.float64) / top * 255.0 + 0.5).astype(np.uint8)
    elif array.dtype == bool:
        out = array.astype(np.uint8) * 255
    else:
        hi = 1.0 if float(np.nanmax(array)) <= 1.0 else 255.0
        out = (np.clip(np.nan_to_num(array), 0, hi) / hi * 255.0 + 0.5).astype(np.uint8)
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    elif out.ndim == 3 and out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    elif out.ndim == 3 and out.shape[2] == 2:  # grey + alpha
        out = np.repeat(out[:, :, :1], 3, axis=2)
    elif out.ndim == 3 and out.shape[2] >= 3:
        out = out[:, :, :3]  # drop alpha (tiles are opaque)
    else:
        raise ValueError(f"unsupported array shape {array.shape}")
    return np.ascontiguousarray(out)


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    array = tifffile.imread(str(path))
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[2] not in (3, 4):
        array = np.moveaxis(array, 0, -1)  # planar (C, H, W) layout
    while array.ndim > 3:  # multi-page or pyramid: the first (largest) page
        array = array[0]
    return array


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as RGB.

    Args:
        path: JPEG, PNG, TIFF (8/16-bit, planar or interleaved), BMP, ...; RGBA and
            grayscale are converted.

    Returns:
        uint8 array of shape (H, W, 3).

    Raises:
        BadImageError: the file is missing, truncated or not an image.
    """
    path = Path(path)
    if not path.is_file():
        raise BadImageError(path, "file not found")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                return _to_uint8_rgb(np.asarray(im))
            if im.mode in ("P", "PA"):
                return _to_uint8_rgb(np.asarray(im.convert("RGBA")))
            if im.mode in ("RGB", "RGBA", "L", "LA"):
                return _to_uint8_rgb(np.asarray(im))
            return _to_uint8_rgb(np.asarray(im.convert("RGB")))
    except Image.DecompressionBombError as bomb:
        raise BadImageError(path, f"too many pixels to decode safely ({bomb})") from bomb
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as pil_error:
        if path.suffix.lower() in (".tif", ".tiff"):
            try:
                return _to_uint8_rgb(_read_tiff(path))
            except Exception as tiff_error:  # noqa: BLE001 - any decoder failure is a bad file
                raise BadImageError(path, f"{pil_error}; tifffile: {tiff_error}") from tiff_error
        raise BadImageError(path, str(pil_error) or type(pil_error).__name__) from pil_error


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize (H, W, 3) uint8 to (size, size, 3) with antialiasing; non-square is centre-cropped."""
    h, w = image.shape[:2]
    if h != w:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        image = image[top : top + side, left : left + side]
    if image.shape[0] == size:
        return image
    resized = Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return np.asarray(resized)
