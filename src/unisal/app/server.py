"""``unisal serve``: the labelling web app (FastAPI), over one project folder.

Every API call needs the project's access token (header ``X-Unisal-Token``, or ``?token=``
for images): without it the answer is 401. Before any route, :class:`Guard` answers 400 to a
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

import asyncio
import contextlib
import errno
import io
import json
import os
import re
import secrets
import socket
import threading
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from importlib import resources
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from PIL import Image as PILImage
from pydantic import AfterValidator, BaseModel, Field, StringConstraints
from pydantic_core import PydanticCustomError

from unisal.app.project import IMPORTER, open_project
from unisal.app.store import HeldOutError, LabelResult, ProjectError, ProjectStore, QueueItem
from unisal.data.catalogue import UnknownClassError
from unisal.data.images import NPZ_SEPARATOR, BadImageError, load_rgb
from unisal.errors import ListenError
from unisal.events import Event, Progress, subscribed

TOKEN_HEADER = "X-Unisal-Token"
BROWSER_FORMATS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"})
MAX_ID = 2**63 - 1  # SQLite's largest integer: a larger id is a 422, not an OverflowError
MAX_BODY = 64 * 1024  # the largest API body is a label: a few hundred bytes
# Seconds a request's whole body may take to arrive: uvicorn has no such limit (its keep-alive
# timeout runs between requests), so a Content-Length larger than what is sent held a connection.
BODY_TIMEOUT = 10.0
# Names the app itself uses in the audit trail; compared after strip() and casefold().
RESERVED_ANNOTATORS = (IMPORTER, "reviewer")
RESERVED_MESSAGE = f"this name is reserved ({', '.join(RESERVED_ANNOTATORS)}): type your own name"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",  # the token in an image URL never leaves in a Referer
    "x-frame-options": "DENY",  # frame-ancestors, for browsers without CSP 2
}
HOST_REFUSED = "this server answers only to its own address (Host header)"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::", "")  # listening on every interface
_HOST_RE = re.compile(
    r"^(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?))(?::(?P<port>\d{1,5}))?$"
)


def not_reserved(name: str) -> str:
    """``name``, unless it is a reserved one in any case or width (NFKC: ``ＩＭＰＯＲＴ`` too)."""
    if unicodedata.normalize("NFKC", name).strip().casefold() in RESERVED_ANNOTATORS:
        raise PydanticCustomError("reserved_name", RESERVED_MESSAGE)
    return name


# Stripped first: " alice" is alice, and a name of spaces is no name.
AnnotatorName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[\w .@-]+$"),
    AfterValidator(not_reserved),
]
# Strict: a JSON true is no id (lax pydantic would read it as 1).
RowId = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]
ClassName = Annotated[str, Field(min_length=1, max_length=200)]


T = TypeVar("T")


class Who(BaseModel):
    annotator: AnnotatorName


class LabelBody(BaseModel):
    image_id: RowId
    label: ClassName
    annotator: AnnotatorName


class BatchBody(BaseModel):
    annotator: AnnotatorName
    count: int = Field(strict=True, ge=1, le=24)


class ResolveBody(BaseModel):
    disagreement_id: RowId
    label: ClassName
    annotator: AnnotatorName


class SkipBody(BaseModel):
    image_id: RowId
    annotator: AnnotatorName


def short_errors(errors: Sequence[Any], *, limit: int = 300) -> str:
    """One line naming each invalid field and its problem (at most 3), never the input.

    Args:
        errors: pydantic's error dicts; only ``loc``, ``msg`` and ``type`` are read (``input``,
            ``ctx`` and ``url`` may hold or point at what the client sent).
    """
    parts = []
    for error in errors[:3]:
        loc = [str(p)[:40] for p in error.get("loc", ())]
        where = "body" if error.get("type") == "json_invalid" else ".".join(loc[1:]) or ".".join(loc)
        parts.append(f"{where or 'request'}: {str(error.get('msg', 'invalid'))[:120]}")
    return "; ".join(parts)[:limit]


def parse_host(text: str) -> tuple[str, int | None]:
    """``NAME[:PORT]`` or ``[IPv6][:PORT]`` -> (lower-case name, port or None).

    Raises:
        ValueError: anything else (a URL, spaces, a port outside 1-65535).
    """
    match = _HOST_RE.match(text.strip())
    port = int(match["port"]) if match and match["port"] else None
    if match is None or (port is not None and not 1 <= port <= 65535):
        raise ValueError(f"{text!r} is not NAME[:PORT] (a host name or address, and a port 1-65535)")
    return (match["ip6"] or match["name"]).lower(), port


def host_values(name: str, port: int) -> set[str]:
    """The ``Host`` header values that name ``name:port`` (IPv6 in brackets; bare on port 80)."""
    name = name.lower().strip("[]")
    shown = f"[{name}]" if ":" in name else name
    return {f"{shown}:{port}"} | ({shown} if port == 80 else set())


def machine_names() -> set[str]:
    """This machine's host name, FQDN and the addresses they resolve to, and the address of the
    interface that routes outward (none sent: a UDP socket's connect only picks the route)."""
    names = {socket.gethostname(), socket.getfqdn()}
    for name in list(names):
        with contextlib.suppress(OSError):  # a name that does not resolve adds nothing
            names |= {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    for family, target in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        with (
            contextlib.suppress(OSError),
            socket.socket(family, socket.SOCK_DGRAM) as probe,
        ):  # no route: none
            probe.connect((target, 9))
            names.add(str(probe.getsockname()[0]))
    return {n.split("%")[0] for n in names if n}  # an IPv6 scope (fe80::1%eth0) is not in a Host


def allowed_hosts(host: str, port: int, *, extra: Iterable[str] = ()) -> set[str]:
    """The ``Host`` values a server listening on ``host:port`` answers: ``host`` and the loopback
    names; with a wildcard ``host`` also :func:`machine_names`; and each ``extra`` NAME[:PORT]
    (``--allow-host``; the server's port when none is given)."""
    names = {host, *LOOPBACK} | (machine_names() if host in WILDCARD else set())
    out = set().union(*(host_values(name, port) for name in names if name))
    for text in extra:
        name, given = parse_host(text)
        out |= host_values(name, given or port)
    return out


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _header(scope: Scope, name: bytes) -> str | None:
    """The one value of header ``name``; None when it is missing or given twice."""
    values = [bytes(v).decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == name]
    return values[0] if len(values) == 1 else None


class BodyTooLarge(Exception):
    """A streamed request body passed the limit."""


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, read chunk by chunk; None if the client went away.

    Raises:
        BodyTooLarge: at the first chunk that takes it over ``limit`` bytes (the rest is never read).
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            raise BodyTooLarge
        if not message.get("more_body", False):
            return b"".join(chunks)


def secured(send: Send) -> Send:
    """``send`` that puts ``SECURITY_HEADERS`` on the response (replacing any of the same name)."""

    async def send_secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (k, v)
                for k, v in message.get("headers", [])
                if k.decode("latin-1").lower() not in SECURITY_HEADERS
            ]
            message["headers"] = headers + [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
        await send(message)

    return send_secured


async def answer(send: Send, status: int, detail: str) -> None:
    """A short JSON answer ``{"detail": detail}``."""
    body = json.dumps({"detail": detail}, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI wrapper run before any route: refuses a foreign, missing or repeated ``Host`` (400),
    a body over ``max_body`` bytes (413: a Content-Length over it, or a streamed body as soon
    as it passes it) and one that has not all arrived after ``body_timeout`` seconds (408), and adds ``SECURITY_HEADERS`` to every response, errors included."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        hosts: Iterable[str],
        max_body: int = MAX_BODY,
        body_timeout: float = BODY_TIMEOUT,
    ):
        self.app = app
        self.hosts = frozenset(h.lower() for h in hosts)
        self.max_body = max_body
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        if scope["type"] != "http":
            return  # no websockets here: the server closes the connection
        send = secured(send)
        host = _header(scope, b"host")
        if host is None or host.lower() not in self.hosts:
            return await answer(send, 400, HOST_REFUSED)
        too_big = f"request body over {self.max_body} bytes"
        length = _header(scope, b"content-length")
        if length is not None and (not length.strip().isdigit() or int(length) > self.max_body):
            return await answer(send, 413, too_big)
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await read_body(receive, self.max_body)
        except BodyTooLarge:
            return await answer(send, 413, too_big)
        except TimeoutError:
            return await answer(send, 408, f"request body not received within {self.body_timeout:g} s")
        if body is None:
            return None
        pending = [{"type": "http.request", "body": body, "more_body": False}]

        async def replay() -> Message:  # the body once, then what the client sends (a disconnect)
            return pending.pop() if pending else await receive()

        return await self.app(scope, replay, send)


def served_path(image_root: Path, stored: str) -> Path | None:
    """The file to send for a stored image path, or None (a tampered database, a moved file).

    A stored path is the one ``project init`` wrote: relative to the image root, or absolute for
    a file outside it (a CSV listing absolute paths). It is checked as text, read both as a POSIX
    and a Windows path: no ``..``, and a relative one has no root and no drive. Then it may
    resolve anywhere (a symlinked file or sub-folder): the project imported it, and rounds train
    on it. It must name a readable regular file.
    """
    posix, windows = PurePosixPath(stored), PureWindowsPath(stored)
    if not stored or ".." in posix.parts or ".." in windows.parts:
        return None
    if posix.is_absolute():
        path = Path(stored)
    elif windows.anchor:
        return None
    else:
        path = image_root / stored
    return path if path.is_file() and os.access(path, os.R_OK) else None


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
        """The round thread's subscriber."""
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

    @app.get("/api/image/{image_id}", dependencies=auth)
    def image(image_id: Annotated[int, PathParam(ge=1, le=MAX_ID)]) -> Response:
        try:
            relative = store.labelling_image_path(image_id)
        except ProjectError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        file_part, virtual, _ = relative.partition(NPZ_SEPARATOR)
        path = served_path(image_root, file_part)
        if path is None:
            raise HTTPException(status_code=404, detail="image file not found")
        if not virtual and path.suffix.lower() in BROWSER_FORMATS:
            return FileResponse(path)
        try:  # TIFF, images inside an .npz, ...: decoded and sent as PNG
            pixels = load_rgb(str(path) + relative[len(file_part) :])
        except BadImageError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        buffer = io.BytesIO()
        PILImage.fromarray(pixels).save(buffer, format="PNG")
        return Response(buffer.getvalue(), media_type="image/png")

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
