"""A real server process on 127.0.0.1: the printed URL, the token, and a kill -9 in the middle of
a burst of label posts after which every acknowledged label is still there."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unisal.app.project import init_project, open_project

CLASSES = ["a", "b", "c"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(folder: Path, port: int, token: str, *extra: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "unisal", "serve", str(folder), "--port", str(port), "--token", token, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, line
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"the server did not start: {line}")


def post(port: int, path: str, body: dict[str, object], token: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Unisal-Token": token},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    for i in range(300):
        Image.fromarray(np.full((8, 8, 3), i % 250, np.uint8)).save(images / f"tile_{i:03d}.png")
    init_project(tmp_path / "p", images=images, classes=CLASSES)
    return tmp_path / "p"


def test_serve_prints_the_url_with_its_token_and_guards_the_api(project: Path):
    port = free_port()
    process, line = start_server(project, port, "tok-123")
    try:
        assert line.strip() == f"unisal: open http://127.0.0.1:{port}/?token=tok-123"
        status, _ = post(port, "/api/undo", {"annotator": "x"}, "wrong")
        assert status == 401
        status, body = post(port, "/api/undo", {"annotator": "x"}, "tok-123")
        assert status == 200 and body["status"] == "nothing to undo"
    finally:
        process.terminate()
        process.wait(10)


def test_kill_9_during_a_burst_keeps_every_acknowledged_label(project: Path):
    port, token = free_port(), "tok"
    process, _ = start_server(project, port, token)
    acknowledged: dict[int, str] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def annotate(worker: int) -> None:
        for image_id in range(1 + worker, 301, 6):
            if stop.is_set():
                return
            label = CLASSES[image_id % 3]
            try:
                status, body = post(
                    port,
                    "/api/label",
                    {"image_id": image_id, "label": label, "annotator": f"w{worker}"},
                    token,
                )
            except OSError:
                return  # the server is gone
            if status == 200 and body.get("status") == "labelled":
                with lock:
                    acknowledged[image_id] = label

    threads = [threading.Thread(target=annotate, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    while len(acknowledged) < 60:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    stop.set()
    for t in threads:
        t.join(20)
    assert 60 <= len(acknowledged) < 300  # killed in the middle of the burst
    conn = sqlite3.connect(project / "project.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    process, _ = start_server(project, port, token)  # restarts on the same database
    try:
        labels = open_project(project).labels()
        by_id = {r["id"]: r["path"] for r in open_project(project).images()}
        for image_id, label in acknowledged.items():
            assert labels[by_id[image_id]][0] == label
        status, _ = post(port, "/api/label", {"image_id": 299, "label": "a", "annotator": "after"}, token)
        assert status == 200
    finally:
        process.terminate()
        process.wait(10)


def raw_request(port: int, request: bytes) -> bytes:
    """Send ``request`` as it is; the whole answer (the server closes the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer


def test_the_live_server_answers_only_to_its_own_host_names(project: Path):
    port, token = free_port(), "tok-h"
    process, _ = start_server(project, port, token, "--allow-host", "lab.example")
    refused = b'{"detail":"this server answers only to its own address (Host header)"}'
    try:
        for host, status in ((f"evil.example:{port}", 400), ("evil.example", 400), (f"127.0.0.1:{port + 1}", 400),
                             (f"127.0.0.1:{port}", 200), (f"localhost:{port}", 200), (f"[::1]:{port}", 200),
                             (f"lab.example:{port}", 200), (f"LAB.example:{port}", 200)):  # fmt: skip
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.putrequest("GET", "/api/state", skip_host=True)
            conn.putheader("Host", host)
            conn.putheader("X-Unisal-Token", token)
            conn.endheaders()
            response = conn.getresponse()
            body = response.read()
            conn.close()
            assert response.status == status, host
            assert (body == refused) == (status == 400) and (b"classes" in body) == (status == 200), host
        no_host = raw_request(port, f"GET /api/state HTTP/1.0\r\nX-Unisal-Token: {token}\r\n\r\n".encode())
        assert no_host.startswith(b"HTTP/1.1 400") and no_host.endswith(refused)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # a chunked 128 KiB body
        conn.request("POST", "/api/label", body=iter([b" " * 8192] * 16), encode_chunked=True,
                     headers={"X-Unisal-Token": token, "Content-Type": "application/json"})  # fmt: skip
        response = conn.getresponse()
        assert (response.status, response.read()) == (413, b'{"detail":"request body over 65536 bytes"}')
        conn.close()
        assert open_project(project).labels() == {}
    finally:
        process.terminate()
        process.wait(10)


def test_a_port_in_use_is_a_one_line_error_that_never_shows_the_token(project: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "unisal",
                "serve",
                str(project),
                "--port",
                str(port),
                "--token",
                "s3cret-tok",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"Error: cannot listen on 127.0.0.1:{port}: address already in use\n"
