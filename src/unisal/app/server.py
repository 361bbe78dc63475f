"""``unisal serve``: the labelling web app (FastAPI), over one project folder.

Every API call needs the project's access token (header ``X-Unisal-Token``, or ``?token=``
for images): without it the answer is 401. Images are served by id only, from the paths the
project database holds: nothing from a request reaches the filesystem. Request bodies are
validated (pydantic); an unknown class is a 422. A round runs in a background thread while
labelling goes on; a second one is refused (409) until it ends.
"""

from __future__ import annotations

import io
import secrets
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from PIL import Image as PILImage
from pydantic import BaseModel, Field

from unisal.app.project import open_project
from unisal.app.store import LabelResult, ProjectError, ProjectStore, QueueItem
from unisal.data.catalogue import UnknownClassError
from unisal.data.images import NPZ_SEPARATOR, BadImageError, load_rgb

TOKEN_HEADER = "X-Unisal-Token"
BROWSER_FORMATS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"})
ANNOTATOR = Field(min_length=1, max_length=64, pattern=r"^[\w .@-]+$")


class Who(BaseModel):
    annotator: Annotated[str, ANNOTATOR]


class LabelBody(BaseModel):
    image_id: int = Field(ge=1)
    label: str = Field(min_length=1, max_length=200)
    annotator: Annotated[str, ANNOTATOR]


class BatchBody(BaseModel):
    annotator: Annotated[str, ANNOTATOR]
    count: int = Field(ge=1, le=24)


class ResolveBody(BaseModel):
    disagreement_id: int = Field(ge=1)
    label: str = Field(min_length=1, max_length=200)
    annotator: Annotated[str, ANNOTATOR]


class SkipBody(BaseModel):
    image_id: int = Field(ge=1)
    annotator: Annotated[str, ANNOTATOR]


def static_text(name: str) -> str:
    return resources.files("unisal.app").joinpath("static", name).read_text()


class RoundRunner:
    """Runs ``run_round`` in one background thread at a time; remembers the last error."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.thread: threading.Thread | None = None
        self.last_error: str | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self) -> bool:
        if self.running:
            return False
        self.last_error = None

        def work() -> None:
            from unisal.app.rounds import run_round

            try:
                run_round(self.folder, progress=False, log=lambda _: None)
            except BaseException as error:  # noqa: BLE001 - recorded in the database and shown in the app
                self.last_error = f"{type(error).__name__}: {error}"

        self.thread = threading.Thread(target=work, name="unisal-round", daemon=True)
        self.thread.start()
        return True


def create_app(folder: str | Path, token: str) -> FastAPI:
    """The app over project ``folder``; ``token`` guards every API call."""
    folder = Path(folder).resolve()
    store: ProjectStore = open_project(folder)
    image_root = Path(store.settings()["image_root"])
    runner = RoundRunner(folder)
    app = FastAPI(title="unisal", docs_url=None, redoc_url=None, openapi_url=None)

    def check_token(
        request: Request, token_query: Annotated[str | None, Query(alias="token")] = None
    ) -> None:
        given = request.headers.get(TOKEN_HEADER) or token_query or ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(status_code=401, detail="missing or wrong access token")

    auth = [Depends(check_token)]

    @app.exception_handler(ProjectError)
    async def project_error(_: Request, exc: ProjectError) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return static_text("index.html")

    @app.get("/static/{name}")
    def static(name: str) -> HTMLResponse:
        media = {"app.js": "text/javascript", "style.css": "text/css"}
        if name not in media:
            raise HTTPException(status_code=404, detail="not found")
        return HTMLResponse(static_text(name), media_type=media[name])

    @app.get("/api/state", dependencies=auth)
    def state() -> dict[str, Any]:
        rounds = store.rounds()
        return {
            "classes": store.class_names(),
            "counts": store.counts(),
            "rounds": [
                {
                    "id": r["id"],
                    "status": r["status"],
                    "n_labels": r["n_labels"],
                    "metrics": r["metrics"],
                    "error": r["error"],
                }
                for r in rounds
            ],
            "round_running": runner.running or any(r["status"] == "running" for r in rounds),
            "last_error": runner.last_error,
        }

    def described(item: QueueItem) -> dict[str, Any]:
        return {
            "image_id": item.image_id,
            "reason": item.reason,
            "score": item.score,
            "guess": item.guess,
            "guess_confidence": item.guess_confidence,
            "position": item.position,
        }

    @app.post("/api/next", dependencies=auth)
    def next_item(body: Who) -> dict[str, Any] | None:
        item = store.lease_next(body.annotator)
        return None if item is None else described(item)

    @app.post("/api/batch", dependencies=auth)
    def batch(body: BatchBody) -> list[dict[str, Any]]:
        """Up to ``count`` items for a grid, leased to the annotator."""
        return [described(item) for item in store.lease(body.annotator, body.count)]

    def label_change(change: Callable[[], LabelResult]) -> dict[str, Any]:
        """Run a label change; an unknown class is a 422, an unknown image or case a 404."""
        try:
            result = change()
        except UnknownClassError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        except ProjectError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        return {"status": result.status, "image_id": result.image_id, "label": result.label}

    @app.post("/api/label", dependencies=auth)
    def label(body: LabelBody) -> dict[str, Any]:
        return label_change(lambda: store.set_label(body.image_id, body.label, body.annotator))

    @app.post("/api/skip", dependencies=auth)
    def skip(body: SkipBody) -> dict[str, Any]:
        store.skip(body.image_id, body.annotator)
        return {"status": "skipped", "image_id": body.image_id}

    @app.post("/api/undo", dependencies=auth)
    def undo(body: Who) -> dict[str, Any]:
        result = store.undo(body.annotator)
        if result is None:
            return {"status": "nothing to undo"}
        return {"status": result.status, "image_id": result.image_id, "label": result.label}

    @app.get("/api/disagreements", dependencies=auth)
    def disagreements() -> list[dict[str, Any]]:
        """Open disagreements: the label kept, the other one, and who gave each."""
        return [
            {
                "id": d["id"],
                "image_id": d["image_id"],
                "current": d["current"],
                "current_annotator": d["current_annotator"],
                "other": d["label"],
                "other_annotator": d["annotator"],
            }
            for d in store.disagreements()
        ]

    @app.post("/api/resolve", dependencies=auth)
    def resolve(body: ResolveBody) -> dict[str, Any]:
        return label_change(lambda: store.resolve(body.disagreement_id, body.label, body.annotator))

    @app.post("/api/round", dependencies=auth, status_code=202)
    def start_round() -> dict[str, Any]:
        if not runner.start():
            raise HTTPException(status_code=409, detail="a round is already running")
        return {"status": "started"}

    @app.get("/api/image/{image_id}", dependencies=auth)
    def image(image_id: int) -> Response:
        try:
            relative = store.image_path(image_id)
        except ProjectError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        file_part, virtual, _ = relative.partition(NPZ_SEPARATOR)
        path = (image_root / file_part).resolve()
        if image_root not in path.parents or not path.is_file():  # a tampered database, or a moved file
            raise HTTPException(status_code=404, detail="image file not found")
        if not virtual and path.suffix.lower() in BROWSER_FORMATS:
            return FileResponse(path)
        try:  # TIFF, images inside an .npz, ...: decoded and sent as PNG
            pixels = load_rgb(str(image_root / relative))
        except BadImageError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        buffer = io.BytesIO()
        PILImage.fromarray(pixels).save(buffer, format="PNG")
        return Response(buffer.getvalue(), media_type="image/png")

    return app


def serve(folder: str | Path, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None) -> None:
    """Run the app with uvicorn; prints the URL with its token."""
    import uvicorn

    token = token or secrets.token_urlsafe(24)
    app = create_app(folder, token)
    print(f"unisal: open http://{host}:{port}/?token={token}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
