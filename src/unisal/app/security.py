"""The web app's first line (:class:`Guard`, an ASGI middleware before any route): the Host
header checked against the addresses the server was started on (DNS rebinding), bodies capped
at ``MAX_BODY`` bytes and ``BODY_TIMEOUT`` seconds before they are read whole, and
``SECURITY_HEADERS`` (a strict Content-Security-Policy) on every response."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

TOKEN_HEADER = "X-Unisal-Token"
BROWSER_FORMATS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"})
MAX_ID = 2**63 - 1  # SQLite's largest integer: a larger id is a 422, not an OverflowError
MAX_BODY = 64 * 1024  # the largest API body is a label: a few hundred bytes
# Seconds a request's whole body may take to arrive: uvicorn has no such limit (its keep-alive
# timeout runs between requests), so a Content-Length larger than what is sent held a connection.
BODY_TIMEOUT = 10.0
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
