"""End to end in a real browser: Debian's chromium driven by Playwright labels patches with the
keyboard (1-9, s, u) against a live server; then the database is checked."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unisal.app.project import init_project, open_project
from unisal.app.server import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)"
)
CLASSES = ["tumour", "stroma", "normal"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(folder: Path, token: str) -> Iterator[str]:
    """The app over ``folder`` on a free port of 127.0.0.1, served by uvicorn in a thread of this
    process (a subprocess would import torch again: 5 s per test); yields the base URL.
    ``unisal serve`` itself, as a process, is tested in test_live_server.py."""
    import uvicorn

    port = free_port()
    app = create_app(folder, token, hosts={f"127.0.0.1:{port}"})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert thread.is_alive() and time.time() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def chromium():  # type: ignore[no-untyped-def]
    """One headless chromium for the module; each test opens its own context (no shared storage)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def server(tmp_path: Path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(images / f"patch_{i}.png")
    store = init_project(tmp_path / "p", images=images, classes=CLASSES)
    store.replace_queue(None, [{"image_id": r["id"], "reason": f"networks disagree ({i})", "guess": "stroma",
                                "guess_confidence": 0.55} for i, r in enumerate(store.images())])  # fmt: skip
    with serving(tmp_path / "p", "browser-token") as base:
        yield tmp_path / "p", f"{base}/?token=browser-token"


def open_page(browser, url: str, annotator: str, height: int = 760):  # type: ignore[no-untyped-def]
    """A page of a fresh browser context on the app, the annotator's name typed in."""
    context = browser.new_context(viewport={"width": 1100, "height": height})
    page = context.new_page()
    page.goto(url)
    page.fill("#annotator", annotator)
    page.keyboard.press("Tab")
    return context, page


def test_label_with_the_keyboard_in_chromium(server: tuple[Path, str], chromium, tmp_path: Path):
    from playwright.sync_api import expect

    folder, url = server
    context, page = open_page(chromium, url, "dr-alice")
    expect(page.locator("#why")).to_contain_text("networks disagree")
    expect(page.locator("#guess")).to_contain_text("stroma (55 %)")
    expect(page.locator("#patch")).to_have_attribute("src", "/api/image/1?token=browser-token")
    for key, done in (("1", 1), ("2", 2), ("3", 3)):
        page.keyboard.press(key)
        expect(page.locator("#progress")).to_contain_text(f"{done} labelled of 8")
    page.keyboard.press("s")  # skip patch 4
    expect(page.locator("#message")).to_have_text("skipped")
    page.keyboard.press("1")
    expect(page.locator("#progress")).to_contain_text("4 labelled of 8")
    page.keyboard.press("u")  # undo the last label
    expect(page.locator("#progress")).to_contain_text("3 labelled of 8")
    page.keyboard.press("z")
    expect(page.locator("#frame")).to_have_class("zoomed")
    page.screenshot(path=str(tmp_path / "page.png"))
    context.close()
    labels = open_project(folder).labels()
    assert {p: v[:2] for p, v in labels.items()} == {
        "patch_0.png": ("tumour", "dr-alice"),
        "patch_1.png": ("stroma", "dr-alice"),
        "patch_2.png": ("normal", "dr-alice"),
    }
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_label_in_the_grid(server: tuple[Path, str], chromium):
    from playwright.sync_api import expect

    folder, url = server
    context, page = open_page(chromium, url, "dr-bob", height=900)
    expect(page.locator("#patch")).to_have_attribute("src", "/api/image/1?token=browser-token")
    page.keyboard.press("g")
    expect(page.locator("#grid figure")).to_have_count(8)  # the whole queue of 8 fits in the grid
    expect(page.locator("#frame")).to_be_hidden()
    page.keyboard.press("2")  # the selected (first) patch
    expect(page.locator("#progress")).to_contain_text("1 labelled of 8")
    expect(page.locator("#grid figure")).to_have_count(7)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("3")  # the second remaining patch
    expect(page.locator("#progress")).to_contain_text("2 labelled of 8")
    page.locator("#grid figure").nth(0).click()
    page.keyboard.press("1")
    expect(page.locator("#progress")).to_contain_text("3 labelled of 8")
    context.close()
    labels = {p: v[0] for p, v in open_project(folder).labels().items()}
    assert labels == {"patch_0.png": "stroma", "patch_2.png": "normal", "patch_1.png": "tumour"}


def test_review_a_disagreement(server: tuple[Path, str], chromium):
    from playwright.sync_api import expect

    folder, url = server
    store = open_project(folder)
    store.set_label(8, "tumour", "dr-alice")
    store.set_label(8, "normal", "dr-bob")
    context, page = open_page(chromium, url, "dr-carol", height=900)
    expect(page.locator("#review .case")).to_have_count(1)
    expect(page.locator("#review .case span")).to_have_text("tumour (dr-alice) or normal (dr-bob)?")
    page.locator("#review .case button", has_text="normal").click()
    expect(page.locator("#review .case")).to_have_count(0)
    context.close()
    assert open_project(folder).labels()["patch_7.png"][:2] == ("normal", "dr-carol")


def test_enter_in_the_name_field_leaves_it_for_the_class_keys(server: tuple[Path, str], chromium):
    from playwright.sync_api import expect

    folder, url = server
    context = chromium.new_context(viewport={"width": 1100, "height": 760})
    page = context.new_page()
    page.goto(url)
    expect(page.locator("#why")).to_have_text("Type your name (annotator) to start.")
    page.fill("#annotator", "dr-dan")  # the focus is in the field
    page.keyboard.press("Enter")
    expect(page.locator("#patch")).to_have_attribute("src", "/api/image/1?token=browser-token")
    page.keyboard.press("1")
    expect(page.locator("#progress")).to_contain_text("1 labelled of 8")
    expect(page.locator("#annotator")).to_have_value("dr-dan")
    context.close()
    assert {p: v[:2] for p, v in open_project(folder).labels().items()} == {
        "patch_0.png": ("tumour", "dr-dan")
    }


def test_resolving_a_case_needs_the_annotators_name(server: tuple[Path, str], chromium):
    from playwright.sync_api import expect

    folder, url = server
    store = open_project(folder)
    store.set_label(8, "tumour", "dr-alice")
    store.set_label(8, "normal", "dr-bob")
    context = chromium.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.goto(url)  # no name typed
    page.locator("#review .case button", has_text="normal").click()
    expect(page.locator("#message")).to_have_text("Type your name (annotator) to resolve a case.")
    expect(page.locator("#annotator")).to_be_focused()
    expect(page.locator("#review .case")).to_have_count(1)
    context.close()
    assert open_project(folder).labels()["patch_7.png"][:2] == ("tumour", "dr-alice")
    assert len(open_project(folder).disagreements()) == 1


def test_skipping_an_item_that_left_the_queue_says_so(server: tuple[Path, str], chromium):
    from playwright.sync_api import expect

    folder, url = server
    context, page = open_page(chromium, url, "dr-fay")
    expect(page.locator("#patch")).to_have_attribute("src", "/api/image/1?token=browser-token")
    store = open_project(folder)
    store.replace_queue(None, [{"image_id": 2, "reason": "next round"}])  # a round replaced the queue
    page.keyboard.press("s")
    expect(page.locator("#message")).to_have_text("image 1 is not in the queue")
    expect(page.locator("#why")).to_have_text("Why: next round")
    context.close()


def test_a_case_whose_kept_label_was_undone_offers_only_real_classes(server: tuple[Path, str], chromium):
    from playwright.sync_api import expect

    folder, url = server
    store = open_project(folder)
    store.set_label(8, "tumour", "dr-alice")
    store.set_label(8, "normal", "dr-bob")
    store.undo("dr-alice")  # the kept label is gone; bob's waits for review
    context, page = open_page(chromium, url, "dr-carol", height=900)
    expect(page.locator("#review .case span")).to_have_text("no label or normal (dr-bob)?")
    expect(page.locator("#review .case button")).to_have_text(["normal"])  # no "null" choice
    page.locator("#review .case button", has_text="normal").click()
    expect(page.locator("#review .case")).to_have_count(0)
    context.close()
    assert open_project(folder).labels()["patch_7.png"][:2] == ("normal", "dr-carol")


def test_a_tile_of_a_slide_is_shown_with_its_context(chromium, tmp_path: Path):
    """A project on a slide: the tile, its surroundings and its place on the slide load (real
    images, decoded by the browser); the class keys label as before; a plain patch has no slide
    section (the other tests' pages)."""
    from click.testing import CliRunner
    from playwright.sync_api import expect

    from tests.slides.synthetic import two_tissues
    from unisal.cli.main import cli

    slides = tmp_path / "slides"
    slides.mkdir()
    two_tissues(slides / "a.tif")
    folder = tmp_path / "tiles-project"
    result = CliRunner().invoke(
        cli, ["project", "init", str(folder), "--slides", str(slides), "--classes", "TUM,STR"]
    )
    assert result.exit_code == 0, result.output
    store = open_project(folder)
    first = store.images()[:3]
    store.replace_queue(None, [{"image_id": r["id"], "reason": "cold start: random"} for r in first])
    with serving(folder, "tile-token") as base:
        context, page = open_page(chromium, f"{base}/?token=tile-token", "dr-carol", height=1400)
        expect(page.locator("#slide")).to_be_visible()
        width = "(selector) => document.querySelector(selector).naturalWidth"  # no eval: the CSP forbids it
        for image in ("#patch", "#context", "#overview"):  # each decoded: a real picture arrived
            deadline = time.time() + 30
            while not page.evaluate(width, image):
                assert time.time() < deadline, f"{image} did not load"
                time.sleep(0.05)
        assert page.evaluate(width, "#context") == 3 * 224
        page.keyboard.press("2")
        expect(page.locator("#progress")).to_contain_text("1 labelled of")
        page.click("#show-map")  # no trained round yet: the page says so
        expect(page.locator("#message")).to_contain_text("no map yet")
        context.close()
    assert [v[0] for v in open_project(folder).labels().values()] == ["STR"]
