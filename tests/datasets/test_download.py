"""Downloads against a local HTTP server on 127.0.0.1: resume, dropped connections, bad checksums,
corrupt archives, and data sets that are either whole or absent."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from unisal.cli.main import cli
from unisal.data.readers import load_catalogue
from unisal.datasets import (
    DatasetSpec,
    DownloadError,
    RemoteFile,
    data_home,
    dataset_status,
    download_dataset,
    verify_dataset,
)
from unisal.datasets.download import fetch
from unisal.datasets.specs import DATASETS
from unisal.events import collect, subscribed
from unisal.io import folder_marker, remove_stale_temporaries


class Server:
    """Serves ``files`` (path -> bytes) with HTTP range support; ``drop_once`` paths send half the
    body on their first request and close the connection; ``no_range`` paths ignore ranges."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.drop_once: set[str] = set()
        self.no_range: set[str] = set()
        self.ranges: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                if path not in server.files:
                    self.send_error(404, "Not Found")
                    return
                body = server.files[path]
                header = self.headers.get("Range")
                server.ranges.append(header)
                start = 0
                if header and path not in server.no_range:
                    start = int(header.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_error(416, "Range Not Satisfiable")
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if path in server.drop_once:
                    server.drop_once.discard(path)
                    self.wfile.write(body[start : start + (len(body) - start) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}?download=1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), colour, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def tiles_zip(n_per_class: int = 3, top: str = "tiles") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for k, name in enumerate(("ADI", "TUM")):
            for i in range(n_per_class):
                zf.writestr(f"{top}/{name}/{name}_{i}.png", png((200 * k, 90, 40 + i)))
        zf.writestr(f"{top}/README.txt", "not an image")
    return buffer.getvalue()


def spec_for(
    server: Server, body: bytes, *, name: str = "tiny", checksum: str | None = None, n: int = 6
) -> DatasetSpec:
    server.files["/tiles.zip"] = body
    return DatasetSpec(
        name=name,
        description="two classes of 8 px tiles",
        files=(RemoteFile(server.url("/tiles.zip"), "tiles.zip", md5=checksum or md5(body)),),
        data="tiles",
        n_images=n,
    )


def test_download_extracts_a_whole_data_set_that_reads_and_verifies(server: Server, tmp_path: Path):
    spec = spec_for(server, tiles_zip())
    assert dataset_status(spec, tmp_path) == "not downloaded"
    path = download_dataset(spec, tmp_path)
    assert path == tmp_path / "tiny" / "tiles" and folder_marker(tmp_path / "tiny").is_file()
    catalogue = load_catalogue(path)
    assert catalogue.class_names == ["ADI", "TUM"] and len(catalogue) == 6
    assert dataset_status(spec, tmp_path) == "ready"
    assert "6 images" in verify_dataset(spec, tmp_path)
    assert not (tmp_path / ".downloads" / "tiles.zip").exists()  # the archive is not kept by default
    requests = len(server.ranges)
    assert download_dataset(spec, tmp_path) == path  # already there
    assert len(server.ranges) == requests
    # a data set downloaded before issue 16 carries the record under its old name: still ready
    folder_marker(tmp_path / "tiny").rename(tmp_path / "tiny" / ".unisal-complete.json")
    assert dataset_status(spec, tmp_path) == "ready" and "6 images" in verify_dataset(spec, tmp_path)
    assert download_dataset(spec, tmp_path) == path and len(server.ranges) == requests


def test_a_dropped_connection_resumes_with_a_range_request(server: Server, tmp_path: Path):
    body = tiles_zip(40)
    spec = spec_for(server, body)
    server.drop_once.add("/tiles.zip")
    messages: list[str] = []
    with subscribed(collect(messages)):
        download_dataset(spec, tmp_path)
    assert server.ranges[0] is None and server.ranges[1] == f"bytes={len(body) // 2}-"
    assert any("resuming" in m for m in messages)
    assert len(load_catalogue(tmp_path / "tiny" / "tiles")) == 80


def test_a_partial_file_from_a_killed_process_is_continued(server: Server, tmp_path: Path):
    body = tiles_zip(20)
    spec = spec_for(server, body)
    part = tmp_path / ".downloads" / "tiles.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(body[:1000])
    assert dataset_status(spec, tmp_path) == "incomplete"
    download_dataset(spec, tmp_path)
    assert server.ranges == ["bytes=1000-"]
    assert dataset_status(spec, tmp_path) == "ready"


def test_a_server_that_ignores_ranges_restarts_the_file(server: Server, tmp_path: Path):
    body = tiles_zip(5)
    spec = spec_for(server, body)
    server.no_range.add("/tiles.zip")
    part = tmp_path / ".downloads" / "tiles.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage that is not the start of the file")
    download_dataset(spec, tmp_path)
    assert len(load_catalogue(tmp_path / "tiny" / "tiles")) == 10


def test_a_wrong_checksum_leaves_nothing_behind(server: Server, tmp_path: Path):
    spec = spec_for(server, tiles_zip(), checksum="0" * 32)
    with pytest.raises(DownloadError, match="checksum mismatch for tiles.zip: expected MD5 0{32}"):
        download_dataset(spec, tmp_path)
    assert not (tmp_path / "tiny").exists()
    assert list((tmp_path / ".downloads").iterdir()) == []
    assert dataset_status(spec, tmp_path) == "not downloaded"


def test_a_corrupt_archive_is_an_error_and_never_looks_complete(server: Server, tmp_path: Path):
    body = tiles_zip()
    corrupt = body[: len(body) // 2] + b"\0" * 100  # a published checksum of a broken archive
    spec = spec_for(server, corrupt)
    with pytest.raises(DownloadError, match="tiles.zip is not a valid zip archive"):
        download_dataset(spec, tmp_path)
    assert not (tmp_path / "tiny").exists()
    assert not list(tmp_path.glob(".tiny.tmp-*"))
    assert dataset_status(spec, tmp_path) == "incomplete"  # the archive is kept for inspection


def test_an_archive_member_outside_the_target_is_refused(server: Server, tmp_path: Path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("../../escape.png", png((1, 2, 3)))
    spec = spec_for(server, buffer.getvalue())
    with pytest.raises(DownloadError, match="outside the target folder"):
        download_dataset(spec, tmp_path)
    assert not (tmp_path.parent / "escape.png").exists() and not (tmp_path / "tiny").exists()


def test_http_errors_and_unreachable_servers_are_one_line_errors(server: Server, tmp_path: Path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(server.url("/missing.zip"), tmp_path / "x.zip", md5=None)
    with pytest.raises(DownloadError, match="run the command again to resume"):
        fetch(
            "http://127.0.0.1:9/x.zip",
            tmp_path / "y.zip",
            md5=None,
            retries=1,
            timeout=2,
        )


def test_verify_notices_a_missing_image_and_an_incomplete_folder(server: Server, tmp_path: Path):
    spec = spec_for(server, tiles_zip())
    with pytest.raises(DownloadError, match="is not complete"):
        verify_dataset(spec, tmp_path)
    download_dataset(spec, tmp_path)
    (tmp_path / "tiny" / "tiles" / "TUM" / "TUM_0.png").unlink()
    with pytest.raises(DownloadError, match="holds 5 images, not the 6 published"):
        verify_dataset(spec, tmp_path)


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path: Path):
    stale = tmp_path / ".tiny.tmp-999999999"
    (stale / "sub").mkdir(parents=True)
    live = tmp_path / f".other.tmp-{__import__('os').getpid()}"
    live.mkdir()
    remove_stale_temporaries(tmp_path)
    assert not stale.exists() and live.exists()


def npz_bytes() -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    arrays = {}
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        arrays[f"{split}_images"] = rng.integers(0, 255, size=(n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 3).reshape(-1, 1)
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def test_an_npz_data_set_downloads_reads_and_verifies(server: Server, tmp_path: Path):
    body = npz_bytes()
    server.files["/pathmnist.npz"] = body
    spec = DatasetSpec(
        name="pathmnist-test",
        description="a tiny MedMNIST file",
        files=(RemoteFile(server.url("/pathmnist.npz"), "pathmnist.npz", md5=md5(body), extract=False),),
        data="pathmnist.npz",
        n_images=11,
    )
    path = download_dataset(spec, tmp_path)
    assert "11 images" in verify_dataset(spec, tmp_path)
    catalogue = load_catalogue(path)
    assert len(catalogue) == 11 and catalogue.class_names[:2] == ["adipose", "background"]  # PathMNIST names
    assert catalogue.relative(7) == "pathmnist.npz::val/1" and catalogue.labels[7] == 1
    with np.load(path) as npz:
        np.testing.assert_array_equal(catalogue.items.read(7), npz["val_images"][1])
    (tmp_path / "pathmnist-test" / "pathmnist.npz").write_bytes(body[:-10] + b"0123456789")
    with pytest.raises(DownloadError, match="not the published"):
        verify_dataset(spec, tmp_path)


def test_the_cli_downloads_lists_and_verifies(server: Server, tmp_path: Path):
    spec = spec_for(server, tiles_zip(), name="tiny-cli")
    DATASETS.register(spec.name)(spec)
    try:
        runner = CliRunner()
        result = runner.invoke(cli, ["data", "download", "tiny-cli", "--root", str(tmp_path), "--quiet"])
        assert result.exit_code == 0, result.output
        assert f"done: --data {tmp_path / 'tiny-cli' / 'tiles'}" in result.output
        listing = runner.invoke(cli, ["data", "list", "--root", str(tmp_path)]).output
        assert "tiny-cli" in listing and "ready" in listing and "kather2016" in listing
        result = runner.invoke(cli, ["data", "verify", "tiny-cli", "--root", str(tmp_path), "--quiet"])
        assert result.exit_code == 0 and "6 images" in result.output
        result = runner.invoke(cli, ["data", "download", "kathr2016", "--root", str(tmp_path)])
        assert result.exit_code != 0 and "unknown data set 'kathr2016'" in result.output
        assert "Traceback" not in result.output
        result = runner.invoke(cli, ["data", "download", "chaoyang", "--root", str(tmp_path)])
        assert result.exit_code != 0 and "cannot be downloaded automatically" in result.output
    finally:
        DATASETS._items.pop(spec.name)


def test_data_home_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("UNISAL_DATA", str(tmp_path / "shared"))
    assert data_home() == tmp_path / "shared"
    assert data_home(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.delenv("UNISAL_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_home() == tmp_path / "cache" / "unisal" / "datasets"
