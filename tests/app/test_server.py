"""Every API endpoint through FastAPI's TestClient: tokens, path traversal, validation, leases,
double submits, disagreements, undo, images, and background rounds."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from unisal.app.project import init_project, open_project
from unisal.app.server import TOKEN_HEADER, create_app

TOKEN = "s3cret-token"
CLASSES = ["red", "green", "blue"]


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
    client = TestClient(create_app(project, TOKEN))
    client.headers[TOKEN_HEADER] = TOKEN
    return client


def test_every_api_call_needs_the_token(project: Path):
    anonymous = TestClient(create_app(project, TOKEN))
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

    release = threading.Event()

    def slow_round(folder: Path, **kwargs: object) -> None:
        release.wait(10)
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(rounds, "run_round", slow_round)
    assert client.post("/api/round", json={}).status_code == 202
    assert client.get("/api/state").json()["round_running"] is True
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
    assert state["last_error"] == "RuntimeError: simulated crash"


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
