"""``unisal cache ls|clear`` over a cache folder with image and feature caches."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

from click.testing import CliRunner

from unisal.cli.main import cli
from unisal.data.cache import build_cache
from unisal.data.readers import read_image_folder


def make_caches(make_image_folder, folder: Path) -> tuple[str, str]:
    paths = read_image_folder(make_image_folder(classes={"A": 2, "B": 2}, size=16)).ids
    array, _ = build_cache(paths, 16, cache_dir=folder, workers=1)
    features = folder / "features" / ("f00d" * 5)
    features.mkdir(parents=True)
    (features / "features.npy").write_bytes(b"\0" * 2048)
    (features / "complete.json").write_text(json.dumps({"backbone": "tiny", "shape": [4, 8, 16]}))
    (folder / "datasets" / "kather2016").mkdir(parents=True)  # downloaded data: never a cache
    return Path(array.filename).stem, "f00d" * 5


def test_ls_and_clear(make_image_folder, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    image_key, feature_key = make_caches(make_image_folder, folder)
    runner = CliRunner()
    listing = runner.invoke(cli, ["cache", "ls", "--cache-dir", str(folder)]).output
    assert f"images   {image_key}" in listing and "4 images of 16 px" in listing
    assert f"features {feature_key}" in listing and "tiny, 4 images x 8 views x 16" in listing
    (record,) = folder.glob("*.sha1.json")  # the files' hashes, which key the image cache by content
    assert f"hashes   {record.name.removesuffix('.sha1.json')}" in listing and "SHA-1 of 4 files" in listing
    assert "3 caches" in listing and "datasets" not in listing
    result = runner.invoke(cli, ["cache", "clear", "--cache-dir", str(folder)])
    assert result.exit_code != 0 and "name the caches to remove" in result.output
    result = runner.invoke(cli, ["cache", "clear", "nope", "--cache-dir", str(folder)])
    assert result.exit_code != 0 and "no cache named nope" in result.output
    result = runner.invoke(cli, ["cache", "clear", image_key, "--cache-dir", str(folder)])
    assert result.exit_code == 0 and f"removed images cache {image_key}" in result.output
    assert not list(folder.glob(f"{image_key}*")) and (folder / "features" / feature_key).is_dir()
    with (folder / "features" / feature_key / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # a build in progress
        result = runner.invoke(cli, ["cache", "clear", "--all", "--cache-dir", str(folder)])
        assert f"kept {feature_key}: another process is building it" in result.output
    result = runner.invoke(cli, ["cache", "clear", "--all", "--cache-dir", str(folder)])
    assert result.exit_code == 0 and f"removed features cache {feature_key}" in result.output
    assert (folder / "datasets" / "kather2016").is_dir()
    assert "0 caches" in runner.invoke(cli, ["cache", "ls", "--cache-dir", str(folder)]).output


def test_symlinked_entries_are_sized_and_removed_as_links(make_image_folder, tmp_path: Path) -> None:
    """A cache entry that is a symbolic link (to a file or a folder elsewhere) counts as the link:
    `ls` does not size its target, `clear` removes the link, leaves the target, and says what it
    freed."""
    folder = tmp_path / "cache"
    make_caches(make_image_folder, folder)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "features").mkdir(parents=True)
    (elsewhere / "big.npy").write_bytes(b"\0" * 3_000_000)
    (elsewhere / "features" / "features.npy").write_bytes(b"\0" * 5_000_000)
    beef, cafe = "beef" * 5, "cafe" * 5
    (folder / f"{beef}.npy").symlink_to(elsewhere / "big.npy")
    (folder / "features" / cafe).symlink_to(elsewhere / "features", target_is_directory=True)
    runner = CliRunner()
    listing = runner.invoke(cli, ["cache", "ls", "--cache-dir", str(folder)]).output
    lines = {line.split()[1]: line for line in listing.splitlines()[:-1]}
    assert "link to" in lines[beef] and " 0.0 MB" in lines[beef]
    assert "link to" in lines[cafe] and " 0.0 MB" in lines[cafe]
    result = runner.invoke(cli, ["cache", "clear", beef, cafe, "--cache-dir", str(folder)])
    assert result.exit_code == 0, result.output
    assert "0.00 GB freed" in result.output
    assert not (folder / f"{beef}.npy").is_symlink() and not (folder / "features" / cafe).is_symlink()
    assert (elsewhere / "big.npy").stat().st_size == 3_000_000
    assert (elsewhere / "features" / "features.npy").is_file()


def test_clear_never_enters_a_linked_features_folder_nor_takes_files_of_the_users(
    make_image_folder, tmp_path: Path
) -> None:
    """`clear --all` removes caches only: not what a linked `features` folder points to, not a
    file whose name is no cache key, and a dangling link is an entry that is removed cleanly."""
    folder = tmp_path / "cache"
    make_caches(make_image_folder, folder)
    precious = tmp_path / "precious"
    (precious / "important").mkdir(parents=True)
    (precious / "important" / "thesis.txt").write_text("mine")
    features = folder / "features"
    for sub in features.iterdir():
        (precious / sub.name).mkdir()  # even a folder named like a key, behind the link
    import shutil

    shutil.rmtree(features)
    features.symlink_to(precious, target_is_directory=True)
    (folder / "notes.npy").write_bytes(b"mine")
    (folder / ("dead" * 5 + ".npy")).symlink_to(tmp_path / "gone.npy")
    runner = CliRunner()
    listing = runner.invoke(cli, ["cache", "ls", "--cache-dir", str(folder)])
    assert listing.exit_code == 0, listing.output
    assert "notes" not in listing.output and "dead" * 5 in listing.output
    result = runner.invoke(cli, ["cache", "clear", "--all", "--cache-dir", str(folder)])
    assert result.exit_code == 0, result.output
    assert (precious / "important" / "thesis.txt").read_text() == "mine" and len(
        list(precious.iterdir())
    ) == 2
    assert (folder / "notes.npy").read_bytes() == b"mine" and features.is_symlink()
    assert not (folder / ("dead" * 5 + ".npy")).is_symlink()
