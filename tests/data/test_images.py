"""Decoding every image format users bring into (H, W, 3) uint8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from unisal.data.images import BadImageError, load_rgb, resize_square


def _first(folder: Path, pattern: str) -> Path:
    files = sorted(folder.glob(pattern))
    assert files, f"no {pattern} in {folder}"
    return files[0]


@pytest.mark.parametrize(
    ("relative", "pattern", "size"),
    [
        ("crc-samples/kather2016/01_TUMOR", "*.tif", 150),
        ("crc-samples/nct-crc-he-100k", "*.tif", 224),
        ("crc-samples/crc-val-he-7k", "*.png", 224),
        ("lc25000-lung/lung_aca", "*.jpeg", 224),
    ],
    ids=["kather2016-tiff", "nct-tiff", "crc-val-png", "lc25000-jpeg"],
)
def test_load_rgb_real_tiles(shared_data: Path, relative: str, pattern: str, size: int) -> None:
    image = load_rgb(_first(shared_data / relative, pattern))
    assert image.shape == (size, size, 3)
    assert image.dtype == np.uint8
    # A real H&E tile is not blank: its pixels vary.
    assert image.std() > 5


def test_load_rgb_16bit_tiff_is_scaled_to_8bit(tmp_path: Path) -> None:
    values = np.array([0, 32768, 65535], np.uint16)
    rgb16 = np.stack([values, values[::-1], np.full(3, 65535, np.uint16)], axis=-1)[None]
    path = tmp_path / "deep.tif"
    tifffile.imwrite(path, rgb16, photometric="rgb")
    image = load_rgb(path)
    assert image.dtype == np.uint8
    assert image.shape == (1, 3, 3)
    np.testing.assert_array_equal(image[0, :, 0], [0, 128, 255])
    np.testing.assert_array_equal(image[0, :, 1], [255, 128, 0])
    np.testing.assert_array_equal(image[0, :, 2], [255, 255, 255])


def test_load_rgb_16bit_grey_tiff_becomes_three_equal_channels(tmp_path: Path) -> None:
    grey = np.array([[0, 32768, 65535]], np.uint16)
    path = tmp_path / "grey16.tif"
    tifffile.imwrite(path, grey)
    image = load_rgb(path)
    assert image.shape == (1, 3, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[0, :, channel], [0, 128, 255])


def test_load_rgb_drops_alpha_and_keeps_rgb(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, size=(8, 10, 4), dtype=np.uint8)
    rgba[..., 3] = np.arange(10, dtype=np.uint8)[None, :] * 25  # partly transparent
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    image = load_rgb(path)
    assert image.shape == (8, 10, 3)
    np.testing.assert_array_equal(image, rgba[..., :3])


def test_load_rgb_grey_png_becomes_three_equal_channels(tmp_path: Path) -> None:
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    path = tmp_path / "grey.png"
    Image.fromarray(grey, mode="L").save(path)
    image = load_rgb(path)
    assert image.shape == (6, 8, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], grey)


def test_load_rgb_planar_tiff(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    planar = rng.integers(0, 256, size=(3, 12, 20), dtype=np.uint8)
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, planar, photometric="rgb", planarconfig="separate")
    image = load_rgb(path)
    assert image.shape == (12, 20, 3)
    np.testing.assert_array_equal(image, np.moveaxis(planar, 0, -1))


def _assert_bad(path: Path) -> BadImageError:
    with pytest.raises(BadImageError) as info:
        load_rgb(path)
    assert str(path) in str(info.value)
    assert info.value.path == str(path)
    return info.value


def test_truncated_jpeg_is_a_bad_image(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    path = tmp_path / "cut.jpg"
    Image.fromarray(rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _assert_bad(path)


@pytest.mark.filterwarnings("ignore:Truncated File Read")
def test_truncated_tiff_is_a_bad_image(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[:100])
    _assert_bad(path)


def test_text_file_named_png_is_a_bad_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    _assert_bad(path)


def test_missing_file_is_a_bad_image(tmp_path: Path) -> None:
    error = _assert_bad(tmp_path / "nowhere.png")
    assert "not found" in error.reason


def test_resize_square_centre_crops_wide_image() -> None:
    # Red | green | blue columns: the centre square of a 40 x 60 image is all green.
    image = np.zeros((40, 60, 3), np.uint8)
    image[:, :10] = (255, 0, 0)
    image[:, 10:50] = (0, 255, 0)
    image[:, 50:] = (0, 0, 255)
    out = resize_square(image, 16)
    assert out.shape == (16, 16, 3)
    assert out.dtype == np.uint8
    assert (out == np.array([0, 255, 0], np.uint8)).all()


def test_resize_square_centre_crops_tall_image() -> None:
    # Top 5 rows black, bottom 5 rows black, middle 20 x 20 square white.
    image = np.zeros((30, 20, 3), np.uint8)
    image[5:25] = 255
    out = resize_square(image, 8)
    assert out.shape == (8, 8, 3)
    assert (out == 255).all()


def test_resize_square_keeps_an_image_of_the_target_size() -> None:
    image = np.random.default_rng(4).integers(0, 256, size=(24, 24, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_square(image, 24), image)


def test_resize_square_downsamples_to_the_requested_size() -> None:
    image = np.random.default_rng(5).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    out = resize_square(image, 32)
    assert out.shape == (32, 32, 3)
    assert out.dtype == np.uint8
    # Antialiased downsampling keeps the mean brightness.
    assert abs(float(out.mean()) - float(image.mean())) < 2.0


def test_32_bit_integer_holding_16_bit_values_is_scaled_as_16_bit(tmp_path: Path) -> None:
    """Older Pillow opens 16-bit PNGs as 32-bit mode "I"; the values are still 16-bit."""
    array = np.array([[0, 32768, 65535]], dtype=np.int32)
    path = tmp_path / "i32.tif"
    tifffile.imwrite(path, array)
    rgb = load_rgb(path)
    assert rgb[0, :, 0].tolist() == [0, 128, 255]
    assert (rgb[..., 0] == rgb[..., 2]).all()
