"""``unisal serve``: the labelling web app (FastAPI), over one project folder.

Every API call needs the project's access token (header ``X-Unisal-Token``, or ``?token=``
for images): without it the answer is 401. Before any route, :class:`~unisal.app.security.Guard` answers 400 to a
request whose ``Host`` is not one the server was started on (DNS rebinding) and 413 to a body
over ``MAX_BODY`` bytes (before it is read whole), and puts ``SECURITY_HEADERS`` (a strict
Content-Security-Policy: no inline script or style) on every response. Images are served by id
only, from the paths the project database holds: nothing from a request reaches the filesystem.
Request bodies are validated (pydantic; ids within SQLite's integers); a 422 names the field
and the problem, never echoes the input. An unknown class is a 422. Held-out test images are
never offered, shown, labelled, skipped or resolved (403, or 404 for the image itself).
Annotator names in ``RESERVED_ANNOTATORS`` are refused: ``import`` marks labels that came from
files, ``reviewer`` was the page's shared fallback for resolving (a resolution now needs the
annotator's own name). A round runs in a background thread while labelling goes on; a second
one is refused (409) until it ends.
"""

from __future__ import annotations

import errno
import io
import secrets
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from PIL import Image as PILImage

from unisal.app.project import open_project
from unisal.app.requests import BatchBody, LabelBody, ResolveBody, SkipBody, Who, short_errors
from unisal.app.security import (
    BODY_TIMEOUT,
    BROWSER_FORMATS,
    MAX_ID,
    TOKEN_HEADER,
    Guard,
    allowed_hosts,
    served_path,
)
from unisal.app.slide_views import SlideMaps, context_png, overview_png
from unisal.app.store import HeldOutError, LabelResult, ProjectError, ProjectStore, QueueItem
from unisal.data.catalogue import UnknownClassError
from unisal.data.images import BadImageError
from unisal.data.items import open_items
from unisal.data.slides import TILE_MEMBER
from unisal.errors import ListenError, SlideError, UnisalError
from unisal.events import Event, Message, Progress, subscribed

T = TypeVar("T")


def static_text(name: str) -> str:
    return resources.files("unisal.app").joinpath("static", name).read_text()


class RoundRunner:
    """Runs ``run_round`` in one background thread at a time; remembers the last error and, while
    the round runs, where it stands (its events, :mod:`unisal.events`: the innermost open task)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.thread: threading.Thread | None = None
        self.last_error: str | None = None
        self._tasks: dict[int, Progress] = {}  # the round's open tasks, oldest first
        self._lock = threading.Lock()

    def observe(self, event: Event) -> None:
        """The round thread's subscriber: its messages to the server's terminal (stderr), as
        before events, its progress for the page."""
        if isinstance(event, Message):
            print(event.text, file=sys.stderr, flush=True)
        if not isinstance(event, Progress):
            return
        with self._lock:
            if event.stage == "end":
                self._tasks.pop(event.task, None)
            else:
                self._tasks[event.task] = event

    @property
    def progress(self) -> dict[str, Any] | None:
        """``{"task", "done", "total", "unit"}`` of the innermost task of the running round, or None."""
        with self._lock:
            if not self.running or not self._tasks:
                return None
            last = next(reversed(self._tasks.values()))
        return {"task": last.name, "done": last.done, "total": last.total, "unit": last.unit}

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self) -> bool:
        if self.running:
            return False
        self.last_error = None
        with self._lock:
            self._tasks.clear()

        def work() -> None:
            from unisal.app.rounds import run_round

            try:
                with subscribed(self.observe):
                    run_round(self.folder)
            except BaseException as error:  # noqa: BLE001 - recorded in the database and shown in the app
                self.last_error = f"{type(error).__name__}: {error}"

        self.thread = threading.Thread(target=work, name="unisal-round", daemon=True)
        self.thread.start()
        return True


def create_app(folder: str | Path, token: str, *, hosts: Iterable[str]) -> Guard:
    """The app over project ``folder``; ``token`` guards every API call.

    Args:
        hosts: the ``Host`` header values to answer (see :func:`allowed_hosts`); any other is
            a 400.
    """
    folder = Path(folder).resolve()
    store: ProjectStore = open_project(folder)
    image_root = Path(store.settings()["image_root"])
    runner = RoundRunner(folder)
    maps = SlideMaps(folder, store)
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

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": short_errors(exc.errors())})

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
        if not runner.running:  # a round of a process that was killed: recorded failed, not "running"
            store.fail_stale_rounds()
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
            "round_progress": runner.progress,
            "last_error": runner.last_error,
        }

    def described(item: QueueItem) -> dict[str, Any]:
        return {
            "image_id": item.image_id,
            "tile": TILE_MEMBER in item.path,  # a tile of a slide: the page shows its context
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

    def queue_change(change: Callable[[], T]) -> T:
        """Run a store change: an unknown class is a 422, a held-out image a 403, an unknown
        image, case or queue item a 404."""
        try:
            return change()
        except UnknownClassError as exc:  # the store's message repeats the label: not sent back
            raise HTTPException(
                status_code=422, detail=f"label: not one of the classes {store.class_names()}"
            ) from exc
        except HeldOutError as exc:
            raise HTTPException(status_code=403, detail=str(exc)) from exc
        except ProjectError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc

    def label_change(change: Callable[[], LabelResult]) -> dict[str, Any]:
        result = queue_change(change)
        return {"status": result.status, "image_id": result.image_id, "label": result.label}

    @app.post("/api/label", dependencies=auth)
    def label(body: LabelBody) -> dict[str, Any]:
        return label_change(lambda: store.set_label(body.image_id, body.label, body.annotator))

    @app.post("/api/skip", dependencies=auth)
    def skip(body: SkipBody) -> dict[str, Any]:
        queue_change(lambda: store.skip(body.image_id, body.annotator))
        return {"status": "skipped", "image_id": body.image_id}

    @app.post("/api/undo", dependencies=auth)
    def undo(body: Who) -> dict[str, Any]:
        result = store.undo(body.annotator)
        if result is None:
            return {"status": "nothing to undo"}
        return {"status": result.status, "image_id": result.image_id, "label": result.label}

    @app.get("/api/disagreements", dependencies=auth)
    def disagreements() -> list[dict[str, Any]]:
        """Open disagreements on pool images: the label kept, the other one, and who gave each
        (an older database's case on a held-out image cannot be resolved here: not offered)."""
        held = store.held_out_ids()
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
            if d["image_id"] not in held
        ]

    @app.post("/api/resolve", dependencies=auth)
    def resolve(body: ResolveBody) -> dict[str, Any]:
        return label_change(lambda: store.resolve(body.disagreement_id, body.label, body.annotator))

    @app.post("/api/round", dependencies=auth, status_code=202)
    def start_round() -> dict[str, Any]:
        if not runner.start():
            raise HTTPException(status_code=409, detail="a round is already running")
        return {"status": "started"}

    def served_item(image_id: int) -> tuple[str, Path, str]:
        """(stored path, the checked file that holds it, the item's id on that file) of a pool
        image; 404 for a held-out or unknown image or a file that is not there."""
        try:
            relative = store.labelling_image_path(image_id)
        except ProjectError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        holder = open_items([relative]).holder(0)  # the file that holds the item, as stored
        path = served_path(image_root, holder)
        if path is None:
            raise HTTPException(status_code=404, detail="image file not found")
        return relative, path, str(path) + relative[len(holder) :]

    @app.get("/api/image/{image_id}", dependencies=auth)
    def image(image_id: Annotated[int, PathParam(ge=1, le=MAX_ID)]) -> Response:
        relative, path, item = served_item(image_id)
        if item == str(path) and path.suffix.lower() in BROWSER_FORMATS:  # the item is the file
            return FileResponse(path)
        try:  # TIFF, rows of an .npz, tiles of a slide: read by the item's source, sent as PNG
            pixels = open_items([item]).read(0)  # on the checked file
        except BadImageError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        buffer = io.BytesIO()
        PILImage.fromarray(pixels).save(buffer, format="PNG")
        return Response(buffer.getvalue(), media_type="image/png")

    def slide_picture(image_id: int, draw: Callable[[str], bytes | None]) -> Response:
        _, _, item = served_item(image_id)
        if TILE_MEMBER not in item:
            raise HTTPException(status_code=404, detail="not a tile of a slide")
        try:
            picture = draw(item)
        except (SlideError, BadImageError) as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        except UnisalError as exc:  # the model or its data cannot be read: say why
            raise HTTPException(status_code=409, detail=str(exc)) from exc
        if picture is None:
            raise HTTPException(status_code=404, detail="no trained round yet: run a round first")
        return Response(picture, media_type="image/png")

    @app.get("/api/context/{image_id}", dependencies=auth)
    def context(image_id: Annotated[int, PathParam(ge=1, le=MAX_ID)]) -> Response:
        """The tile's surroundings at its magnification, the tile outlined."""
        return slide_picture(image_id, context_png)

    @app.get("/api/overview/{image_id}", dependencies=auth)
    def overview(image_id: Annotated[int, PathParam(ge=1, le=MAX_ID)]) -> Response:
        """The tile's slide, small, with the tile's place marked."""
        return slide_picture(image_id, overview_png)

    @app.get("/api/map/{image_id}", dependencies=auth)
    def slide_map(image_id: Annotated[int, PathParam(ge=1, le=MAX_ID)]) -> Response:
        """The map of the tile's slide by the latest trained round (as ``unisal heatmap``)."""
        return slide_picture(image_id, maps.picture)

    return Guard(app, hosts=hosts)


def serve(
    folder: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    allow_hosts: Iterable[str] = (),
) -> None:
    """Run the app with uvicorn; prints the URL with its token.

    Args:
        allow_hosts: more ``NAME[:PORT]`` values to answer besides the listening address (a
            lab's DNS name, a reverse proxy's); see :func:`allowed_hosts`.
    """
    import uvicorn

    token = token or secrets.token_urlsafe(24)
    app = create_app(folder, token, hosts=allowed_hosts(host, port, extra=allow_hosts))
    listening = listen(host, port)
    shown = f"[{host}]" if ":" in host else host
    # Only now: the URL and its token name this server, not whatever else held the port.
    print(f"unisal: open http://{shown}:{port}/?token={token}", flush=True)
    config = uvicorn.Config(app, log_level="warning")
    uvicorn.Server(config).run(sockets=[listening])


def listen(host: str, port: int) -> socket.socket:
    """A socket bound and listening on ``host:port``, for uvicorn to serve on.

    Raises:
        ListenError: the address is in use or cannot be bound; the message says why.
    """
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ListenError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a restart reuses the port
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise ListenError(f"cannot listen on {where}: {reason}") from None
    sock.set_inheritable(True)
    return sock


__all__ = [
    "BODY_TIMEOUT",
    "TOKEN_HEADER",
    "RoundRunner",
    "allowed_hosts",
    "create_app",
    "serve",
    "static_text",
]
