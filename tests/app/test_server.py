"""Every API endpoint through FastAPI's TestClient: tokens, Host headers, security headers, path
traversal, symlinked images, validation and limits, leases, double submits, disagreements, undo,
the held-out test images, images, and background rounds."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from unisal.app.project import init_project, open_project
from unisal.app.server import BODY_TIMEOUT, TOKEN_HEADER, create_app

TOKEN = "s3cret-token"
CLASSES = ["red", "green", "blue"]
HOSTS = {"testserver"}  # the Host that TestClient sends
MAX_ID = 2**63 - 1  # SQLite's largest integer


@pytest.fixture
def project(make_image_folder, tmp_path: Path) -> Path:
    root = make_image_folder(classes={"red": 4, "green": 4, "blue": 4}, size=16)
    Image.fromarray(np.full((16, 16, 3), 77, np.uint8)).save(root / "blue" / "scan.tif")
    (tmp_path / "outside.txt").write_text("secret")
    folder = tmp_path / "p"
    store = init_project(folder, images=root, classes=CLASSES)
    store.replace_queue(
        None,
        [
            {"image_id": r["id"], "reason": f"picked {r['id']}", "guess": "red", "guess_confidence": 0.5}
            for r in store.images()
        ],
    )
    return folder


@pytest.fixture
def client(project: Path) -> TestClient:
    client = TestClient(create_app(project, TOKEN, hosts=HOSTS))
    client.headers[TOKEN_HEADER] = TOKEN
    return client


def test_every_api_call_needs_the_token(project: Path):
    anonymous = TestClient(create_app(project, TOKEN, hosts=HOSTS))
    calls = [("get", "/api/state", None), ("post", "/api/next", {"annotator": "a"}), ("get", "/api/image/1", None),
             ("post", "/api/label", {"image_id": 1, "label": "red", "annotator": "a"}), ("post", "/api/undo", {"annotator": "a"}),
             ("post", "/api/skip", {"image_id": 1, "annotator": "a"}), ("post", "/api/round", {})]  # fmt: skip
    for method, path, body in calls:
        assert getattr(anonymous, method)(path, **({"json": body} if body else {})).status_code == 401, path
        wrong = getattr(anonymous, method)(
            path, headers={TOKEN_HEADER: "nope"}, **({"json": body} if body else {})
        )
        assert wrong.status_code == 401, path
    assert (
        anonymous.get("/api/image/1", params={"token": TOKEN}).status_code == 200
    )  # <img src> carries it in the URL
    assert open_project(project).labels() == {}  # nothing happened without the token
    page = anonymous.get("/")
    assert page.status_code == 200 and "unisal" in page.text and "app.js" in page.text
    assert anonymous.get("/static/app.js").status_code == 200
    assert anonymous.get("/static/../project.db").status_code == 404


def test_state_lists_classes_counts_and_rounds(client: TestClient):
    state = client.get("/api/state").json()
    assert state["classes"] == CLASSES and state["counts"]["images"] == 13 and state["counts"]["queue"] == 13
    assert state["rounds"] == [] and state["round_running"] is False


def test_leases_labels_double_submits_and_disagreements(client: TestClient, project: Path):
    first = client.post("/api/next", json={"annotator": "alice"}).json()
    second = client.post("/api/next", json={"annotator": "bob"}).json()
    assert (
        first["image_id"] != second["image_id"]
        and first["reason"].startswith("picked")
        and first["guess"] == "red"
    )
    body = {"image_id": first["image_id"], "label": "green", "annotator": "alice"}
    assert client.post("/api/label", json=body).json()["status"] == "labelled"
    assert client.post("/api/label", json=body).json()["status"] == "unchanged"  # a double submit
    other = client.post("/api/label", json={**body, "label": "blue", "annotator": "bob"}).json()
    assert other["status"] == "disagreement"
    store = open_project(project)
    assert list(store.labels().values())[0][:2] == ("green", "alice") and len(store.disagreements()) == 1
    assert client.get("/api/state").json()["counts"]["disagreements"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {"image_id": 1, "label": "TUMOUR", "annotator": "a"},  # unknown class
        {"image_id": 1, "annotator": "a"},  # missing label
        {"image_id": "one", "label": "red", "annotator": "a"},
        {"image_id": 0, "label": "red", "annotator": "a"},
        {"image_id": 1, "label": "red", "annotator": "../../etc"},
        {"image_id": 1, "label": "red", "annotator": ""},
        {"image_id": 1, "label": "red", "annotator": "   "},
        {"image_id": True, "label": "red", "annotator": "a"},
        {"image_id": 1.5, "label": "red", "annotator": "a"},
        {"image_id": 1, "label": "x" * 201, "annotator": "a"},
    ],
)
def test_bad_bodies_are_422(client: TestClient, project: Path, body: dict[str, object]):
    response = client.post("/api/label", json=body)
    assert response.status_code == 422
    assert open_project(project).labels() == {}


def test_unknown_image_is_404(client: TestClient):
    assert (
        client.post("/api/label", json={"image_id": 999, "label": "red", "annotator": "a"}).status_code == 404
    )
    assert client.get("/api/image/999").status_code == 404


def test_skip_and_undo(client: TestClient, project: Path):
    item = client.post("/api/next", json={"annotator": "alice"}).json()
    assert (
        client.post("/api/skip", json={"image_id": item["image_id"], "annotator": "alice"}).json()["status"]
        == "skipped"
    )
    again = client.post("/api/next", json={"annotator": "alice"}).json()
    assert again["image_id"] != item["image_id"]
    client.post("/api/label", json={"image_id": again["image_id"], "label": "red", "annotator": "alice"})
    assert client.post("/api/undo", json={"annotator": "alice"}).json()["status"] == "undone"
    assert open_project(project).labels() == {}
    assert client.post("/api/undo", json={"annotator": "alice"}).json()["status"] == "nothing to undo"


def test_images_are_served_by_id_only(client: TestClient, project: Path):
    store = open_project(project)
    ids = {r["path"]: r["id"] for r in store.images()}
    png = client.get(f"/api/image/{ids['red/red_0.png']}")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    tif = client.get(f"/api/image/{ids['blue/scan.tif']}")  # browsers cannot show TIFF: sent as PNG
    assert (
        tif.status_code == 200
        and tif.headers["content-type"] == "image/png"
        and tif.content[:4] == b"\x89PNG"
    )
    for attempt in (
        "/api/image/..%2F..%2Foutside.txt",
        "/api/image/../../outside.txt",
        "/api/image/%2e%2e",
        "/api/image/1;ls",
    ):
        response = client.get(attempt)
        assert response.status_code in (404, 422), attempt
        assert b"secret" not in response.content
    store.conn.execute("UPDATE images SET path = '../outside.txt' WHERE id = 1")  # a tampered database
    assert client.get("/api/image/1").status_code == 404


def test_a_round_runs_in_the_background_and_a_second_is_refused(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
):
    import unisal.app.rounds as rounds
    from unisal.events import Task

    release = threading.Event()
    training = threading.Event()

    def slow_round(folder: Path, **kwargs: object) -> None:
        with Task("decoding images to 32px", 10, unit="img", long=True) as outer:
            outer.advance(10)
            with Task("co-training", 200, unit="step") as task:
                task.advance(120)
                training.set()
                release.wait(10)
                raise RuntimeError("simulated crash")

    monkeypatch.setattr(rounds, "run_round", slow_round)
    assert client.get("/api/state").json()["round_progress"] is None
    assert client.post("/api/round", json={}).status_code == 202
    assert training.wait(10)
    state = client.get("/api/state").json()
    assert state["round_running"] is True
    # the page shows where the round stands: the innermost open task of the round's events
    assert state["round_progress"] == {"task": "co-training", "done": 120, "total": 200, "unit": "step"}
    assert client.post("/api/round", json={}).status_code == 409
    item = client.post("/api/next", json={"annotator": "alice"}).json()  # labelling goes on meanwhile
    assert (
        client.post(
            "/api/label", json={"image_id": item["image_id"], "label": "red", "annotator": "alice"}
        ).status_code
        == 200
    )
    release.set()
    for _ in range(100):
        state = client.get("/api/state").json()
        if not state["round_running"]:
            break
        time.sleep(0.05)
    assert state["last_error"] == "RuntimeError: simulated crash" and state["round_progress"] is None


def test_batch_leases_several_items_for_the_grid(client: TestClient):
    first = client.post("/api/batch", json={"annotator": "alice", "count": 5}).json()
    assert len(first) == 5 and len({i["image_id"] for i in first}) == 5
    again = client.post("/api/batch", json={"annotator": "alice", "count": 5}).json()
    assert [i["image_id"] for i in again] == [i["image_id"] for i in first]  # her own leases first
    other = client.post("/api/batch", json={"annotator": "bob", "count": 24}).json()
    assert len(other) == 8 and not {i["image_id"] for i in other} & {i["image_id"] for i in first}
    assert client.post("/api/batch", json={"annotator": "bob", "count": 25}).status_code == 422
    assert client.post("/api/batch", json={"annotator": "bob", "count": 0}).status_code == 422


def test_disagreements_are_listed_and_resolved(client: TestClient, project: Path):
    client.post("/api/label", json={"image_id": 2, "label": "red", "annotator": "alice"})
    client.post("/api/label", json={"image_id": 2, "label": "blue", "annotator": "bob"})
    client.post("/api/label", json={"image_id": 2, "label": "green", "annotator": "carol"})
    cases = client.get("/api/disagreements").json()
    assert [(c["current"], c["current_annotator"], c["other"], c["other_annotator"]) for c in cases] == [
        ("red", "alice", "blue", "bob"),
        ("red", "alice", "green", "carol"),
    ]
    assert (
        client.post(
            "/api/resolve", json={"disagreement_id": cases[0]["id"], "label": "TUMOUR", "annotator": "rev"}
        ).status_code
        == 422
    )
    result = client.post(
        "/api/resolve", json={"disagreement_id": cases[0]["id"], "label": "blue", "annotator": "rev"}
    ).json()
    assert result == {"status": "resolved", "image_id": 2, "label": "blue"}
    assert client.get("/api/disagreements").json() == []  # every open case on that image is closed
    store = open_project(project)
    assert list(store.labels().values())[0][:2] == ("blue", "rev")
    assert [(r["old"], r["new"], r["action"]) for r in store.history()][-1] == ("red", "blue", "relabel")
    assert (
        client.post(
            "/api/resolve", json={"disagreement_id": cases[0]["id"], "label": "red", "annotator": "rev"}
        ).status_code
        == 404
    )


# ---- security headers (item 1)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def assert_security_headers(response) -> None:  # type: ignore[no-untyped-def]
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


def test_every_response_carries_the_security_headers(client: TestClient, project: Path):
    for path, status in (("/", 200), ("/static/app.js", 200), ("/static/style.css", 200),
                         ("/api/state", 200), ("/api/image/1", 200), ("/api/image/999", 404),
                         ("/nowhere", 404)):  # fmt: skip
        response = client.get(path)
        assert response.status_code == status, path
        assert_security_headers(response)
    anonymous = TestClient(create_app(project, TOKEN, hosts=HOSTS))
    assert_security_headers(anonymous.get("/api/state"))  # a 401
    assert_security_headers(client.get("/", headers={"host": "evil.example"}))  # a refused Host
    assert_security_headers(client.post("/api/undo", content=b" " * 70_000))  # a 413


def test_the_page_holds_no_inline_script_style_or_markup_building():
    """The CSP forbids inline script and style; the page's script builds DOM nodes, never markup."""
    from unisal.app.server import static_text

    page, script = static_text("index.html"), static_text("app.js")
    assert page.count("<script") == 1 and '<script src="/static/app.js"></script>' in page
    assert "style=" not in page and "<style" not in page and not re.search(r"\son[a-z]+=", page)
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        'setAttribute("on',
    ):
        assert sink not in script, sink


# ---- the Host header (item 2)
ROUTES = [("get", "/", None), ("get", "/static/app.js", None), ("get", "/api/state", None),
          ("get", "/api/image/1", None), ("get", "/api/disagreements", None), ("get", "/nowhere", None),
          ("post", "/api/next", {"annotator": "a"}), ("post", "/api/batch", {"annotator": "a", "count": 2}),
          ("post", "/api/label", {"image_id": 1, "label": "red", "annotator": "a"}),
          ("post", "/api/skip", {"image_id": 1, "annotator": "a"}), ("post", "/api/undo", {"annotator": "a"}),
          ("post", "/api/resolve", {"disagreement_id": 1, "label": "red", "annotator": "a"}),
          ("post", "/api/round", {})]  # fmt: skip


def test_a_foreign_host_is_refused_on_every_route(client: TestClient, project: Path):
    for host in ("evil.example", "evil.example:80", "testserver.evil.example", "testserver:1", ""):
        for method, path, body in ROUTES:
            response = getattr(client, method)(
                path, headers={"host": host}, **({"json": body} if body else {})
            )
            assert response.status_code == 400, (host, path)
            assert response.json() == {"detail": "this server answers only to its own address (Host header)"}
    store = open_project(project)
    assert store.labels() == {} and store.rounds() == []  # nothing happened
    assert store.conn.execute("SELECT COUNT(*) FROM queue WHERE lease_owner IS NOT NULL").fetchone()[0] == 0
    for method, path, body in ROUTES[:-1]:  # the allowed Host is served (any case); no round is started
        response = getattr(client, method)(
            path, headers={"host": "TestServer"}, **({"json": body} if body else {})
        )
        assert response.status_code in (200, 404), path


def call_asgi(app, method: str, path: str, headers: list[tuple[bytes, bytes]], receive):  # type: ignore[no-untyped-def]
    """Call the ASGI app directly (what TestClient cannot send: no Host; a body really streamed);
    returns the messages it sent."""
    import asyncio

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8765)}  # fmt: skip
    asyncio.run(app(scope, receive, send))
    return sent


def test_a_request_without_a_host_is_refused(project: Path):
    """HTTP/1.0 allows no Host: the ASGI scope then has none, and the app answers 400."""

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    app = create_app(project, TOKEN, hosts=HOSTS)
    sent = call_asgi(app, "GET", "/api/state", [(b"x-unisal-token", TOKEN.encode())], receive)
    assert sent[0]["status"] == 400
    assert sent[1]["body"] == b'{"detail":"this server answers only to its own address (Host header)"}'


def test_allowed_hosts_follow_the_listening_address(monkeypatch: pytest.MonkeyPatch):
    import socket

    from unisal.app.server import allowed_hosts

    assert allowed_hosts("127.0.0.1", 8765) == {"127.0.0.1:8765", "localhost:8765", "[::1]:8765"}
    assert allowed_hosts("localhost", 80) == {"127.0.0.1:80", "localhost:80", "[::1]:80", "127.0.0.1",
                                              "localhost", "[::1]"}  # fmt: skip
    assert allowed_hosts("10.1.2.3", 9000, extra=["Lab.Example", "proxy.example:443"]) == {
        "10.1.2.3:9000", "127.0.0.1:9000", "localhost:9000", "[::1]:9000", "lab.example:9000", "proxy.example:443"}  # fmt: skip
    monkeypatch.setattr(socket, "gethostname", lambda: "labbox")
    monkeypatch.setattr(socket, "getfqdn", lambda name="": "labbox.lab.example")
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: [
        (socket.AF_INET, 0, 0, "", ("192.168.7.9", 0)), (socket.AF_INET6, 0, 0, "", ("fe80::1", 0, 0, 0))])  # fmt: skip
    every = allowed_hosts("0.0.0.0", 8765)
    assert {"labbox:8765", "labbox.lab.example:8765", "192.168.7.9:8765", "[fe80::1]:8765",
            "0.0.0.0:8765", "localhost:8765"} <= every  # fmt: skip
    assert "[fe80::1]:8765" in allowed_hosts("::", 8765)


def test_serve_passes_allow_host_and_refuses_a_bad_one(project: Path, monkeypatch: pytest.MonkeyPatch):
    from click.testing import CliRunner

    import unisal.app.server as server
    from unisal.cli.main import cli

    seen: dict[str, object] = {}
    monkeypatch.setattr(server, "serve", lambda folder, **kw: seen.update(kw))
    runner = CliRunner()
    result = runner.invoke(
        cli, ["serve", str(project), "--allow-host", "lab.example", "--allow-host", "b.example:8080"]
    )
    assert result.exit_code == 0, result.output
    assert seen["allow_hosts"] == ("lab.example", "b.example:8080")
    for bad in ("lab example", "http://lab.example", "lab.example:0", "lab.example:x", ""):
        result = runner.invoke(cli, ["serve", str(project), "--allow-host", bad])
        assert result.exit_code == 2 and "--allow-host" in result.output, bad
        assert "Traceback" not in result.output


# ---- held-out test images and reserved names (item 3)
@pytest.fixture
def held_out(make_image_folder, tmp_path: Path) -> tuple[TestClient, Path, list[int]]:
    """A project whose images red_0 and green_0 are the held-out test set (imported labels); an
    older database also queued them and holds an open disagreement on one."""
    root = make_image_folder(classes={"red": 3, "green": 3}, size=8)
    test_csv = tmp_path / "test.csv"
    test_csv.write_text("path,label\nred/red_0.png,red\ngreen/green_0.png,green\n")
    folder = tmp_path / "ho"
    store = init_project(folder, images=root, classes=CLASSES, test_csv=test_csv)
    test_ids = [r["id"] for r in store.images() if r["split"] == "test"]
    store.replace_queue(
        None, [{"image_id": r["id"], "reason": "r"} for r in store.images() if r["split"] == "train"]
    )
    with store.transaction() as conn:  # what a database written before the fix can hold
        conn.executemany("INSERT INTO queue (image_id, position, reason) VALUES (?, ?, 'old')",
                         [(i, -1) for i in test_ids])  # fmt: skip
        conn.execute("INSERT INTO disagreements (image_id, class_id, annotator, at) VALUES (?, 2, 'bob', 'then')",
                     (test_ids[0],))  # fmt: skip
    client = TestClient(create_app(folder, TOKEN, hosts=HOSTS))
    client.headers[TOKEN_HEADER] = TOKEN
    return client, folder, test_ids


def test_held_out_images_are_never_leased_served_or_changed(held_out: tuple[TestClient, Path, list[int]]):
    client, folder, test_ids = held_out
    before = open_project(folder).labels()
    assert {p: v[:2] for p, v in before.items()} == {"red/red_0.png": ("red", "import"),
                                                      "green/green_0.png": ("green", "import")}  # fmt: skip
    leased = [
        i["image_id"] for i in client.post("/api/batch", json={"annotator": "alice", "count": 24}).json()
    ]
    assert len(leased) == 4 and not set(leased) & set(test_ids)
    assert client.post("/api/next", json={"annotator": "bob"}).json() is None  # the 4 pool items are alice's
    held = test_ids[0]
    message = f"image {held} is in the held-out test set: it is not labelled in the app"
    assert client.get(f"/api/image/{held}").status_code == 404
    for path, body in (("/api/label", {"image_id": held, "label": "blue", "annotator": "alice"}),
                       ("/api/skip", {"image_id": held, "annotator": "alice"})):  # fmt: skip
        response = client.post(path, json=body)
        assert (response.status_code, response.json()) == (403, {"detail": message}), path
    assert client.get("/api/disagreements").json() == []  # the old case on a test image is not offered
    case = open_project(folder).conn.execute("SELECT id FROM disagreements").fetchone()[0]
    response = client.post(
        "/api/resolve", json={"disagreement_id": case, "label": "blue", "annotator": "carol"}
    )
    assert (response.status_code, response.json()) == (403, {"detail": message})
    store = open_project(folder)
    assert store.labels() == before and store.disagreements() == []  # nor listed or counted
    assert client.get("/api/state").json()["counts"]["disagreements"] == 0
    assert store.conn.execute("SELECT COUNT(*) FROM disagreements WHERE resolved = 0").fetchone()[0] == 1
    assert [r["action"] for r in store.history()] == ["import", "import"]
    assert store.conn.execute("SELECT COUNT(*) FROM skips WHERE image_id = ?", (held,)).fetchone()[0] == 0


def test_the_store_refuses_to_queue_or_undo_held_out_images(held_out: tuple[TestClient, Path, list[int]]):
    from unisal.app.store import ProjectError

    _, folder, test_ids = held_out
    store = open_project(folder)
    queue = store.conn.execute("SELECT image_id, reason FROM queue ORDER BY image_id").fetchall()
    with pytest.raises(
        ProjectError, match=rf"^cannot queue held-out test image\(s\) {test_ids[0]}, {test_ids[1]}$"
    ):
        store.replace_queue(
            None, [{"image_id": 3, "reason": "r"}, *({"image_id": i, "reason": "r"} for i in test_ids)]
        )
    with pytest.raises(ProjectError, match=r"^cannot queue unknown image id\(s\) 999$"):
        store.replace_queue(None, [{"image_id": 999, "reason": "r"}])
    assert store.conn.execute("SELECT image_id, reason FROM queue ORDER BY image_id").fetchall() == queue
    with store.transaction() as conn:  # an old database: alice once relabelled a test image
        conn.execute("INSERT INTO label_events (image_id, old_class_id, new_class_id, annotator, action, at) "
                     "VALUES (?, 1, 0, 'alice', 'relabel', 'then')", (test_ids[0],))  # fmt: skip
        conn.execute("UPDATE labels SET annotator = 'alice' WHERE image_id = ?", (test_ids[0],))
    assert store.undo("alice") is None  # her test-image change is not undone through the app
    held_path = store.image_path(test_ids[0])
    assert held_path == "green/green_0.png" and store.labels()[held_path][:2] == ("green", "alice")


@pytest.mark.parametrize("name", ["import", "Import", " IMPORT ", "ＩＭＰＯＲＴ", "reviewer"])
def test_reserved_annotator_names_are_refused(client: TestClient, project: Path, name: str):
    message = "annotator: this name is reserved (import, reviewer): type your own name"
    for path, body in (("/api/next", {}), ("/api/batch", {"count": 1}), ("/api/undo", {}),
                       ("/api/label", {"image_id": 1, "label": "red"}), ("/api/skip", {"image_id": 1}),
                       ("/api/resolve", {"disagreement_id": 1, "label": "red"})):  # fmt: skip
        response = client.post(path, json={**body, "annotator": name})
        assert (response.status_code, response.json()) == (422, {"detail": message}), path
    store = open_project(project)
    assert store.labels() == {}
    assert (
        store.conn.execute(
            "SELECT (SELECT COUNT(*) FROM queue WHERE lease_owner IS NOT NULL) + (SELECT COUNT(*) FROM skips)"
        ).fetchone()[0]
        == 0
    )


# ---- limits (item 4)
@pytest.mark.parametrize("big", [2**63, 10**30])
def test_ids_beyond_sqlite_range_are_422(client: TestClient, big: int):
    too_big = "image_id: Input should be less than or equal to 9223372036854775807"
    calls = [("get", f"/api/image/{big}", None, too_big),
             ("post", "/api/label", {"image_id": big, "label": "red", "annotator": "a"}, too_big),
             ("post", "/api/skip", {"image_id": big, "annotator": "a"}, too_big),
             ("post", "/api/resolve", {"disagreement_id": big, "label": "red", "annotator": "a"},
              too_big.replace("image_id", "disagreement_id"))]  # fmt: skip
    for method, path, body, message in calls:
        response = getattr(client, method)(path, **({"json": body} if body else {}))
        assert (response.status_code, response.json()) == (422, {"detail": message}), path
    for method, path, body, _ in calls:  # the largest id SQLite holds is a plain "not found"
        path = path.replace(str(big), str(MAX_ID))
        body = body and {k: (MAX_ID if v == big else v) for k, v in body.items()}
        assert getattr(client, method)(path, **({"json": body} if body else {})).status_code == 404, path


def test_skip_of_an_unknown_or_unqueued_image_is_404(client: TestClient, project: Path):
    store = open_project(project)
    store.replace_queue(None, [{"image_id": 1, "reason": "r"}, {"image_id": 2, "reason": "r"}])
    for image_id, message in ((999, "no image with id 999"), (5, "image 5 is not in the queue")):
        response = client.post("/api/skip", json={"image_id": image_id, "annotator": "alice"})
        assert (response.status_code, response.json()) == (404, {"detail": message})
    assert store.conn.execute("SELECT COUNT(*) FROM skips").fetchone()[0] == 0
    assert client.post("/api/skip", json={"image_id": 2, "annotator": "alice"}).status_code == 200


def test_big_bodies_are_413_before_they_are_read(client: TestClient, project: Path):
    big = b'{"image_id": 1, "label": "red", "annotator": "' + b"a" * 70_000 + b'"}'
    message = {"detail": "request body over 65536 bytes"}
    for path in ("/api/label", "/api/next", "/api/state", "/nowhere"):
        response = client.post(path, content=big, headers={"content-type": "application/json"})
        assert (response.status_code, response.json()) == (413, message), path

    read: list[int] = []

    async def chunks() -> dict[str, object]:  # no Content-Length: a chunked body, 8 KiB at a time, endless
        read.append(1)
        return {"type": "http.request", "body": b" " * 8192, "more_body": True}

    headers = [
        (b"host", b"testserver"),
        (b"transfer-encoding", b"chunked"),
        (TOKEN_HEADER.encode(), TOKEN.encode()),
    ]
    sent = call_asgi(create_app(project, TOKEN, hosts=HOSTS), "POST", "/api/label", headers, chunks)
    assert sent[0]["status"] == 413 and sent[1]["body"] == b'{"detail":"request body over 65536 bytes"}'
    assert len(read) == 9  # refused at the chunk that passes 64 KiB
    response = client.post("/api/label", content=b'{"image_id": 1, "label": "red", "annotator": "a"}' + b" " * 60_000,
                           headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == 200  # under the limit
    store = open_project(project)
    assert {p: v[:2] for p, v in store.labels().items()} == {store.image_path(1): ("red", "a")}


def test_errors_never_echo_the_input(client: TestClient):
    marker = "Q" * 50_000
    for body in ({"image_id": marker, "label": "red", "annotator": "a"},
                 {"image_id": 1, "label": marker, "annotator": "a"},
                 {"image_id": 1, "label": "red", "annotator": marker},
                 {"image_id": 1, "label": "red", "annotator": "<img src=x onerror=alert(1)>"},
                 [marker], marker):  # fmt: skip
        response = client.post("/api/label", json=body)
        assert response.status_code == 422
        assert len(response.content) < 300 and "QQQ" not in response.text and "<img" not in response.text
        assert isinstance(response.json()["detail"], str)
        assert not {"input", "ctx", "url"} & set(response.text.replace('"detail"', "").split('"'))
    response = client.post(
        "/api/label", json={"image_id": 1, "label": "TUMOUR-" + "Q" * 150, "annotator": "a"}
    )
    assert response.status_code == 422 and "TUMOUR" not in response.text and "QQQ" not in response.text
    assert response.json() == {"detail": f"label: not one of the classes {CLASSES}"}
    response = client.post(
        "/api/label", content=b'{"image_id": ' + marker.encode(), headers={"content-type": "application/json"}
    )
    assert (response.status_code, response.json()) == (422, {"detail": "body: JSON decode error"})
    response = client.post("/api/label", content=b'{"image_id": ' + b"9" * 5000 + b"}",
                           headers={"content-type": "application/json"})  # fmt: skip
    assert (response.status_code, response.json()) == (400, {"detail": "There was an error parsing the body"})


# ---- symlinked images (item 13)
def test_symlinked_images_are_served_and_tampered_paths_refused(
    client: TestClient, project: Path, tmp_path: Path
):
    store = open_project(project)
    root = Path(store.settings()["image_root"])
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "more").mkdir(parents=True)
    Image.fromarray(np.full((4, 4, 3), 10, np.uint8)).save(elsewhere / "one.png")
    Image.fromarray(np.full((4, 4, 3), 20, np.uint8)).save(elsewhere / "more" / "two.png")
    (root / "linked.png").symlink_to(elsewhere / "one.png")
    (root / "linked_dir").symlink_to(elsewhere / "more", target_is_directory=True)
    with store.transaction() as conn:
        conn.executemany("INSERT INTO images (path, sha256, bytes, grp) VALUES (?, ?, 1, ?)",
                         [("linked.png", "x", "g1"), ("linked_dir/two.png", "y", "g2")])  # fmt: skip
    ids = store.image_ids(["linked.png", "linked_dir/two.png"])
    for path, source in (
        ("linked.png", elsewhere / "one.png"),
        ("linked_dir/two.png", elsewhere / "more" / "two.png"),
    ):
        response = client.get(f"/api/image/{ids[path]}")
        assert response.status_code == 200 and response.content == source.read_bytes(), path
    for tampered in (
        "red/../../outside.txt",
        "../outside.txt",
        "linked_dir/../../outside.txt",
    ):
        store.conn.execute("UPDATE images SET path = ? WHERE id = 1", (tampered,))
        response = client.get("/api/image/1")
        assert (response.status_code, response.json()) == (404, {"detail": "image file not found"}), tampered
    (elsewhere / "one.png").unlink()  # a dangling link
    assert client.get(f"/api/image/{ids['linked.png']}").status_code == 404


def test_a_body_shorter_than_its_content_length_times_out(project: Path):
    """A client that announces more bytes than it sends gets a 408 after the body timeout, not a
    connection held for ever (uvicorn has no such timeout: timeout_keep_alive is between requests)."""
    import asyncio

    async def receive() -> dict[str, object]:
        if not sent_first:
            sent_first.append(True)
            return {"type": "http.request", "body": b'{"annot', "more_body": True}
        await asyncio.sleep(3600)  # the rest never comes
        raise AssertionError("unreachable")

    sent_first: list[bool] = []
    app = create_app(project, TOKEN, hosts=HOSTS)
    app.body_timeout = 0.2
    headers = [(b"host", b"testserver"), (b"x-unisal-token", TOKEN.encode()), (b"content-length", b"100")]
    sent = call_asgi(app, "POST", "/api/undo", headers, receive)
    assert sent[0]["status"] == 408
    assert sent[1]["body"] == b'{"detail":"request body not received within 0.2 s"}'
    assert BODY_TIMEOUT == 10.0


def test_an_absolute_stored_path_outside_the_image_root_is_served(
    client: TestClient, project: Path, tmp_path: Path
):
    """``project init --format csv`` stores the absolute path of a file outside the image root:
    the app shows it (a readable regular file); a folder, a missing file or a non-image is a 404."""
    store = open_project(project)
    outside = tmp_path / "elsewhere" / "far.png"
    outside.parent.mkdir()
    Image.fromarray(np.full((4, 4, 3), 30, np.uint8)).save(outside)
    store.conn.execute("UPDATE images SET path = ? WHERE id = 1", (str(outside),))
    response = client.get("/api/image/1")
    assert response.status_code == 200 and response.content == outside.read_bytes()
    for stored, detail in (
        (str(outside.parent), "image file not found"),
        (str(tmp_path / "gone.png"), "image file not found"),
        (f"{outside.parent}/../elsewhere/far.png", "image file not found"),
    ):
        store.conn.execute("UPDATE images SET path = ? WHERE id = 1", (stored,))
        response = client.get("/api/image/1")
        assert (response.status_code, response.json()) == (404, {"detail": detail}), stored
