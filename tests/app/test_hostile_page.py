"""The labelling page against hostile data: markup in class names, file names, annotator names,
a round's error and the queue's reasons is shown as text, never run; and the page's
Content-Security-Policy blocks inline script even if markup got in. Debian's chromium via
Playwright, the app served in a thread (see test_browser.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.app.test_browser import CHROMIUM, chromium, serving  # noqa: F401 - the fixture is used by name
from unisal.app.project import init_project, open_project

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)"
)
IMG = "<img src=x onerror=alert(1)>"
SVG = '"><svg onload=alert(2)>'
CLASSES = [IMG, SVG, "normal"]
FILES = ["<img src=x onerror=alert(3)>.png", '"><svg onload=alert(4)>.png', "plain.png"]
IMPORTER = "<img src=x onerror=alert(5)>"  # labels imported under any name (project import --annotator)
OTHER = '"><svg onload=alert(6)>'
ERROR = f"FileNotFoundError: {FILES[0]} is unreadable"
LAST_ERROR = "RuntimeError: <img src=x onerror=alert(7)>"
REASONS = ["<img src=x onerror=alert(8)> disagree", '"><svg onload=alert(9)> far', "plain"]


@pytest.fixture
def hostile(tmp_path: Path):  # type: ignore[no-untyped-def]
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in FILES:
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(images / name)
    store = init_project(tmp_path / "p", images=images, classes=CLASSES)
    ids = {r["path"]: r["id"] for r in store.images()}
    store.import_labels([(FILES[2], IMG)], IMPORTER)
    store.set_label(ids[FILES[2]], SVG, OTHER)  # a disagreement between two hostile names
    store.replace_queue(None, [{"image_id": ids[f], "reason": why, "guess": SVG, "guess_confidence": 0.5}
                               for f, why in zip(FILES[:2], REASONS, strict=False)])  # fmt: skip
    done = store.start_round({})
    store.finish_round(done, metrics={"accuracy": 0.5, IMG: 1}, checkpoint="rounds/1.pt")
    store.fail_round(store.start_round({}), ERROR)
    with serving(tmp_path / "p", "tok") as base:
        yield tmp_path / "p", f"{base}/?token=tok"


def test_hostile_names_are_shown_as_text(hostile, chromium, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    from playwright.sync_api import expect

    import unisal.app.rounds as rounds

    def failing_round(folder: Path, **kwargs: object) -> None:
        raise RuntimeError(LAST_ERROR.split(": ", 1)[1])

    monkeypatch.setattr(rounds, "run_round", failing_round)
    folder, url = hostile
    context = chromium.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    refused: list[str] = []  # the page itself must live within its CSP
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(url)
    page.fill("#annotator", "dr-eve")
    page.keyboard.press("Tab")
    expect(page.locator("#why")).to_have_text(f"Why: {REASONS[0]}")
    expect(page.locator("#guess")).to_have_text(f"Model's guess: {SVG} (50 %)")
    expect(page.locator("#buttons")).to_contain_text(IMG)
    expect(page.locator("#buttons")).to_contain_text(SVG)
    expect(page.locator("#per-class tr")).to_have_count(3)
    expect(page.locator("#per-class")).to_contain_text(IMG)
    expect(page.locator("#per-class")).to_contain_text(SVG)
    expect(page.locator("#rounds li")).to_have_count(2)
    expect(page.locator("#rounds li").nth(1)).to_have_text(f"failed, 1 labels — {ERROR}")
    expect(page.locator("#curve circle")).to_have_count(1)
    expect(page.locator("#review .case span")).to_have_text(f"{IMG} ({IMPORTER}) or {SVG} ({OTHER})?")
    expect(page.locator("#review .case button")).to_have_text([IMG, SVG])
    page.keyboard.press("g")
    expect(page.locator("#grid figcaption")).to_have_text([f"guess {SVG} · {r}" for r in REASONS[:2]])
    page.locator("#round").click()
    expect(page.locator("#round-status")).to_have_text(LAST_ERROR)
    page.keyboard.press("2")  # label the first grid patch with the hostile class
    expect(page.locator("#message")).to_have_text(f"{SVG} ✓")
    page.locator("#review .case button", has_text=SVG).click()
    expect(page.locator("#review .case")).to_have_count(0)
    for injected in ('img[src="x"]', "svg[onload]", "[onerror]", "[onload]"):
        assert page.locator(injected).count() == 0, injected
    assert dialogs == [] and refused == []
    context.close()
    labels = {p: v[:2] for p, v in open_project(folder).labels().items()}
    assert labels == {FILES[0]: (SVG, "dr-eve"), FILES[2]: (SVG, "dr-eve")}


def test_the_csp_blocks_inline_handlers_that_got_in(hostile, chromium):  # noqa: F811
    _, url = hostile
    context = chromium.new_context()
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(url)
    outcome = page.evaluate(
        """() => new Promise((resolve) => {
            const box = document.createElement("div");
            box.innerHTML = '<img src=x onerror="window.pwned = 1">';
            box.querySelector("img").addEventListener("error", () => setTimeout(() => resolve(String(window.pwned)), 100));
            document.body.append(box);
        })"""
    )
    inline = page.evaluate(
        """() => { const s = document.createElement("script"); s.textContent = "window.pwned2 = 1";
                   document.body.append(s); return String(window.pwned2); }"""
    )
    context.close()
    assert (outcome, inline) == ("undefined", "undefined")
    assert len(refused) == 2 and "inline event handler" in refused[0]  # what the other test listens for
