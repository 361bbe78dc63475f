"""The decoded-image cache: contents, reuse, invalidation, bad files and reads by index."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from unisal.data import cache as cache_module
from unisal.data.cache import ImageStore, build_cache, cache_key, default_cache_dir, image_cache_key
from unisal.data.images import BadImageError, load_rgb, resize_square
from unisal.data.readers import read_image_folder
from unisal.events import collect, subscribed


@pytest.fixture
def tile_paths(make_image_folder: Callable[..., Path]) -> list[str]:
    """Six 20 px PNG tiles of two colours (non-square cache size forces a resize)."""
    return read_image_folder(make_image_folder(classes={"A": 3, "B": 3}, size=20)).ids


def test_build_cache_holds_the_resized_images(tile_paths: list[str], tmp_path: Path) -> None:
    array, bad = build_cache(tile_paths, 16, cache_dir=tmp_path / "cache", workers=2)
    assert bad == []
    assert isinstance(array, np.memmap)
    assert array.shape == (6, 16, 16, 3)
    assert array.dtype == np.uint8
    for i, path in enumerate(tile_paths):
        np.testing.assert_array_equal(array[i], resize_square(load_rgb(path), 16))
    # The cache lives where it was asked to, named by the key.
    assert (
        Path(array.filename).resolve()
        == (tmp_path / "cache" / f"{image_cache_key(tile_paths, 16, tmp_path / 'cache')[0]}.npy").resolve()
    )


def test_build_cache_reuses_an_identical_cache(
    tile_paths: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_dir = tmp_path / "cache"
    first, _ = build_cache(tile_paths, 16, cache_dir=cache_dir, workers=1)
    first_file = Path(first.filename)
    mtime = first_file.stat().st_mtime_ns
    expected = np.array(first)

    def no_decoding(path: str, size: int) -> np.ndarray:
        raise AssertionError(f"{path} was decoded again")

    monkeypatch.setattr(cache_module, "_decode", no_decoding)
    second, bad = build_cache(tile_paths, 16, cache_dir=cache_dir, workers=1)
    assert bad == []
    assert Path(second.filename) == first_file
    assert first_file.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(second, expected)
    # Only the cache, its bad-file and completion records and the files' hashes: no temporary files.
    assert sorted(p.name.split(".", 1)[1] for p in cache_dir.iterdir()) == [
        "bad.json",
        "complete.json",
        "npy",
        "sha1.json",
    ]


def test_cache_key_changes_with_files_and_size(tile_paths: list[str]) -> None:
    key = cache_key(tile_paths, 16)
    assert cache_key(list(tile_paths), 16) == key
    assert cache_key(tile_paths, 32) != key
    assert cache_key(tile_paths[:-1], 16) != key

    stat = os.stat(tile_paths[0])
    os.utime(tile_paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = cache_key(tile_paths, 16)
    assert touched != key

    # A file whose content grows changes the key even if its mtime is put back.
    before = os.stat(tile_paths[1])
    with open(tile_paths[1], "ab") as handle:
        handle.write(b"\0")
    os.utime(tile_paths[1], ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(tile_paths[1]).st_mtime_ns == before.st_mtime_ns
    assert cache_key(tile_paths, 16) != touched


def test_cache_key_of_a_missing_file_differs(tile_paths: list[str], tmp_path: Path) -> None:
    missing = [*tile_paths, str(tmp_path / "gone.png")]
    key = cache_key(missing, 16)
    (tmp_path / "gone.png").write_bytes(b"now here")
    assert cache_key(missing, 16) != key


def test_bad_file_gives_an_error_and_a_zero_row(tile_paths: list[str], tmp_path: Path) -> None:
    bad_path = tmp_path / "broken.png"
    bad_path.write_text("not a png")
    paths = [tile_paths[0], str(bad_path), tile_paths[1]]
    array, bad = build_cache(paths, 16, cache_dir=tmp_path / "cache", workers=2)
    assert len(bad) == 1
    assert isinstance(bad[0], BadImageError)
    assert bad[0].path == str(bad_path)
    assert (np.asarray(array[1]) == 0).all()
    np.testing.assert_array_equal(array[0], resize_square(load_rgb(tile_paths[0]), 16))
    np.testing.assert_array_equal(array[2], resize_square(load_rgb(tile_paths[1]), 16))

    # A reused cache reports the same bad file.
    _, bad_again = build_cache(paths, 16, cache_dir=tmp_path / "cache")
    assert [(e.path, e.reason) for e in bad_again] == [(bad[0].path, bad[0].reason)]


def test_default_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNISAL_CACHE", str(tmp_path / "explicit"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("UNISAL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "unisal"


def test_image_store_get_returns_rows_in_the_requested_order() -> None:
    # Row r of the array is filled with the value r, so each image says which row it came from.
    array = np.broadcast_to(np.arange(5, dtype=np.uint8)[:, None, None, None], (5, 4, 4, 3)).copy()
    rows = np.array([3, 0, 4, 1, 2])  # catalogue index -> array row
    store = ImageStore(array=array, rows=rows)
    assert len(store) == 5
    assert store.image_size == 4

    idx = np.array([4, 0, 2, 0, 3])
    out = store.get(idx)
    assert out.shape == (5, 4, 4, 3)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, 0, 0, 0], rows[idx])  # [2, 3, 4, 3, 1]
    np.testing.assert_array_equal(out[:, 0, 0, 0], [2, 3, 4, 3, 1])


def test_image_store_over_a_real_cache(tile_paths: list[str], tmp_path: Path) -> None:
    array, _ = build_cache(tile_paths, 16, cache_dir=tmp_path, workers=1)
    store = ImageStore(array=array, rows=np.arange(len(tile_paths)))
    out = store.get(np.array([5, 1, 3]))
    for k, i in enumerate([5, 1, 3]):
        np.testing.assert_array_equal(out[k], resize_square(load_rgb(tile_paths[i]), 16))


# ---- issue 8, items 11 and 12: faults of images and of the cache


def _bomb_png(path: Path, side: int = 50_000) -> None:
    """A tiny PNG file that declares side x side pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_a_bad_image(tile_paths: list[str], tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    _bomb_png(bomb)
    with pytest.raises(BadImageError, match="too many pixels to decode safely"):
        load_rgb(bomb)
    array, bad = build_cache([*tile_paths, str(bomb)], 16, cache_dir=tmp_path / "c", workers=1)
    assert [Path(e.path).name for e in bad] == ["bomb.png"] and not array[-1].any()


@pytest.mark.parametrize("damage", ["truncate", "zero", "bad-json", "done-json"])
def test_a_damaged_cache_is_rebuilt_with_a_message(
    tile_paths: list[str], tmp_path: Path, damage: str
) -> None:
    folder = tmp_path / "c"
    first, _ = build_cache(tile_paths, 16, cache_dir=folder, workers=1)
    expected = np.array(first)
    npy = Path(first.filename)
    del first
    key = npy.stem
    if damage == "truncate":
        with npy.open("r+b") as handle:
            handle.truncate(npy.stat().st_size // 2)
    elif damage == "zero":
        data = np.load(npy, mmap_mode="r+")
        data[:] = 0
        data.flush()
        del data
    elif damage == "bad-json":
        (folder / f"{key}.bad.json").write_text("[{broken")
    else:
        (folder / f"{key}.complete.json").write_text("{}")
    messages: list[str] = []
    with subscribed(collect(messages)):
        array, _ = build_cache(tile_paths, 16, cache_dir=folder, workers=1)
    np.testing.assert_array_equal(array, expected)
    assert len(messages) == 1 and messages[0].startswith(f"rebuilding the image cache {key}.npy: ")


def test_stale_temporaries_are_removed_and_live_ones_kept(tile_paths: list[str], tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    stale = folder / ".abc.npy.tmp-999999999"
    stale.write_bytes(b"\0" * 1000)
    live = folder / f".abc.npy.tmp-{os.getpid()}"
    live.write_bytes(b"x")
    messages: list[str] = []
    with subscribed(collect(messages)):
        build_cache(tile_paths, 16, cache_dir=folder, workers=1)
    assert not stale.exists() and live.exists()
    assert messages == ["removed .abc.npy.tmp-999999999, left by a build that was killed"]


def test_a_read_only_or_full_cache_folder_is_a_clear_error(
    tile_paths: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unisal.data.cache import CacheError

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):  # root ignores permissions: stand in for the OS refusing
            real_write = Path.write_bytes

            def refuse(self: Path, data: bytes) -> int:
                if self.parent == folder:
                    raise PermissionError(13, "Permission denied")
                return real_write(self, data)

            monkeypatch.setattr(Path, "write_bytes", refuse)
        with pytest.raises(CacheError, match=r"cannot write the image cache in .*ro \(Permission denied\)"):
            build_cache(tile_paths, 16, cache_dir=folder, workers=1)
    finally:
        folder.chmod(0o700)
    monkeypatch.undo()
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**9, 10**9, 100))
    with pytest.raises(CacheError, match=r"the image cache needs 0.00 GB but .* has 0.00 GB free"):
        build_cache(tile_paths, 16, cache_dir=tmp_path / "full", workers=1)
    assert not list((tmp_path / "full").glob("*.npy"))


def test_a_copy_of_the_data_finds_its_caches(
    make_image_folder: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache is keyed by the files' bytes: a copy with new paths and new modification times
    (another disk, a restored backup) reuses it; a changed byte does not."""
    import shutil

    original = make_image_folder(classes={"A": 3, "B": 3}, size=20)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy, copy_function=shutil.copy)  # new paths and new mtimes
    paths, copied = read_image_folder(original).ids, read_image_folder(copy).ids
    assert cache_key(paths, 16) != cache_key(copied, 16)  # the path-based key differs
    cache_dir = tmp_path / "cache"
    key, hashes = image_cache_key(paths, 16, cache_dir)
    assert image_cache_key(copied, 16, cache_dir) == (key, hashes) and all(hashes)
    first, _ = build_cache(paths, 16, cache_dir=cache_dir, workers=1)
    monkeypatch.setattr(cache_module, "_decode", lambda path, size: pytest.fail(f"{path} decoded again"))
    second, _ = build_cache(copied, 16, cache_dir=cache_dir, workers=1)
    assert Path(second.filename) == Path(first.filename) == cache_dir / f"{key}.npy"
    assert image_cache_key(copied, 32, cache_dir)[0] != key  # another size: another cache
    with open(copied[0], "ab") as handle:
        handle.write(b"\0")  # one byte more (a PNG still readable)
    assert image_cache_key(copied, 16, cache_dir)[0] != key


def test_images_without_a_file_of_their_own_keep_the_path_key(tile_paths: list[str], tmp_path: Path) -> None:
    """An image inside an .npz, or a missing file, has no hash: the key is the path-based one."""
    missing = [*tile_paths, str(tmp_path / "gone.png")]
    key, hashes = image_cache_key(missing, 16, tmp_path / "cache")
    assert key == cache_key(missing, 16) and hashes[-1] == ""
    npz = [f"{tmp_path / 'data.npz'}::train/{i}" for i in range(3)]
    assert image_cache_key(npz, 16, tmp_path / "cache")[0] == cache_key(npz, 16)


def test_a_copy_of_the_data_gets_its_own_bad_image_list(
    make_image_folder: Callable[..., Path], tmp_path: Path
) -> None:
    """The cache found through a copy's bytes names the copy's files as bad, never the original's
    (the bad list is kept by position, and reasons without paths)."""
    import shutil

    original = make_image_folder(classes={"A": 3, "B": 3}, size=20)
    (original / "B" / "blank.png").write_bytes(b"")
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    cache_dir = tmp_path / "cache"
    paths, copied = read_image_folder(original).ids, read_image_folder(copy).ids
    _, bad = build_cache(paths, 16, cache_dir=cache_dir, workers=1)
    assert [e.path for e in bad] == [str(original / "B" / "blank.png")]
    _, bad = build_cache(copied, 16, cache_dir=cache_dir, workers=1)
    assert [e.path for e in bad] == [str(copy / "B" / "blank.png")]
    assert str(original) not in bad[0].reason and str(original) not in str(bad[0])
    assert len(list(cache_dir.glob("*.npy"))) == 1  # one cache for both: the same bytes


def test_a_file_rewritten_at_the_same_size_and_time_is_seen(tmp_path: Path) -> None:
    """Same path, same size, the modification time set back (`touch -r`): the files' state also
    holds the inode's change time (which no user can set back), so the bytes are hashed again
    and the new pixels are decoded, not the old cache's."""
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    paths = []
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0)]):
        path = folder / f"{i}.png"
        Image.fromarray(np.full((8, 8, 3), colour, np.uint8)).save(path, compress_level=0)
        paths.append(str(path))
    cache_dir = tmp_path / "cache"
    before, _ = build_cache(paths, 8, cache_dir=cache_dir, key=image_cache_key(paths, 8, cache_dir)[0],
                            workers=1)  # fmt: skip
    assert before[0, 0, 0].tolist() == [255, 0, 0]
    stat = os.stat(paths[0])
    Image.fromarray(np.full((8, 8, 3), (0, 0, 255), np.uint8)).save(paths[0], compress_level=0)
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns))  # touch -r: the old time back
    assert os.stat(paths[0]).st_size == stat.st_size and os.stat(paths[0]).st_mtime_ns == stat.st_mtime_ns
    after, _ = build_cache(paths, 8, cache_dir=cache_dir, key=image_cache_key(paths, 8, cache_dir)[0],
                           workers=1)  # fmt: skip
    assert after[0, 0, 0].tolist() == [0, 0, 255]


def test_a_cache_marked_complete_by_an_earlier_version_is_reused(
    tile_paths: list[str], tmp_path: Path
) -> None:
    """Caches written before issue 16 carry ``<key>.done.json``: still whole, not rebuilt."""
    folder = tmp_path / "c"
    first, _ = build_cache(tile_paths, 16, cache_dir=folder, workers=1)
    npy = Path(first.filename)
    del first
    (folder / f"{npy.stem}.complete.json").rename(folder / f"{npy.stem}.done.json")
    mtime = npy.stat().st_mtime_ns
    messages: list[str] = []
    with subscribed(collect(messages)):
        build_cache(tile_paths, 16, cache_dir=folder, workers=1)
    assert messages == [] and npy.stat().st_mtime_ns == mtime
