"""``unisal cache ls|clear`` over a cache folder with image and feature caches."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

from click.testing import CliRunner

from unisal.cli.main import cli
from unisal.data.cache import build_cache
from unisal.data.catalogue import read_image_folder


def make_caches(make_image_folder, folder: Path) -> tuple[str, str]:
    paths = read_image_folder(make_image_folder(classes={"A": 2, "B": 2}, size=16)).paths
    array, _ = build_cache(paths, 16, cache_dir=folder, workers=1, progress=False)
    features = folder / "features" / "f00d"
    features.mkdir(parents=True)
    (features / "features.npy").write_bytes(b"\0" * 2048)
    (features / "complete.json").write_text(json.dumps({"backbone": "tiny", "shape": [4, 8, 16]}))
    (folder / "datasets" / "kather2016").mkdir(parents=True)  # downloaded data: never a cache
    return Path(array.filename).stem, "f00d"


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
