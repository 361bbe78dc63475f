"""Events: what long work reports (progress, messages), delivered to whoever subscribed.

Work emits and does not know who listens (USB's ``call_hook``, Python's ``logging``): the command
line's progress bars and messages, the benchmark's progress line and the app's round progress
are subscribers (:mod:`unisal.cli.reporting`, :class:`unisal.app.server.RoundRunner`). No
function takes a ``progress`` or ``log`` argument.

Subscriptions hold for a context (:mod:`contextvars`): a labelling round in the server's thread
and a command in the main thread each reach their own subscribers. With no subscriber, messages
go to the ``unisal`` logger and progress to nobody, so that a library user configures
:mod:`logging` as for any library.

This module imports nothing of unisal: every layer may emit.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal, TypeVar

T = TypeVar("T")

LOGGER = logging.getLogger("unisal")


@dataclass(frozen=True)
class Message:
    """A line for the user. ``topic`` lets a subscriber choose: ``round`` for the per-round lines
    of a run (a benchmark of many runs leaves them out), ``general`` for the rest."""

    text: str
    topic: str = "general"


@dataclass(frozen=True)
class Progress:
    """Where a task stands: ``start`` (``done`` may be above 0 on a resume), ``advance``, ``end``.

    Attributes:
        task: an id, unique in the process: tasks nest (a round's training inside a benchmark).
        name: what is being done, e.g. ``decoding images to 112px``, ``co-training``.
        done, total: units done and expected (``total`` None where unknown).
        unit: ``img``, ``step``, ``B`` ...
        long: work done once and long (a cache, a download): always shown by the command line;
            the rest (training steps, scoring) only when asked for.
        detail: a short note on the last unit, e.g. ``loss=0.412``.
    """

    task: int
    name: str
    stage: Literal["start", "advance", "end"]
    done: int
    total: int | None
    unit: str = "it"
    long: bool = False
    detail: str = ""  # e.g. the last loss


Event = Message | Progress
Subscriber = Callable[[Event], None]

_subscribers: ContextVar[tuple[Subscriber, ...]] = ContextVar("unisal_subscribers", default=())
_task_ids = itertools.count(1)


def emit(event: Event) -> None:
    """Deliver ``event`` to this context's subscribers (a message to the ``unisal`` logger if none)."""
    subscribers = _subscribers.get()
    if not subscribers:
        if isinstance(event, Message):
            LOGGER.info(event.text)
        return
    for subscriber in subscribers:
        subscriber(event)


def message(text: str, *, topic: str = "general") -> None:
    """Emit a :class:`Message`."""
    emit(Message(text, topic))


@contextmanager
def subscribed(*subscribers: Subscriber) -> Iterator[None]:
    """Deliver this context's events also to ``subscribers`` until the block ends."""
    token = _subscribers.set(_subscribers.get() + subscribers)
    try:
        yield
    finally:
        _subscribers.reset(token)


class Task:
    """A unit of work that reports its progress: ``with Task("decoding", total=n) as task:``, then
    ``task.advance(k)``. The end is reported however the block exits."""

    def __init__(
        self, name: str, total: int | None = None, *, unit: str = "it", done: int = 0, long: bool = False
    ):
        self.id = next(_task_ids)
        self.name, self.total, self.unit, self.done, self.long = name, total, unit, done, long
        self.detail = ""

    def _emit(self, stage: Literal["start", "advance", "end"]) -> None:
        emit(Progress(self.id, self.name, stage, self.done, self.total, self.unit, self.long, self.detail))

    def __enter__(self) -> Task:
        self._emit("start")
        return self

    def advance(self, n: int = 1, *, detail: str = "") -> None:
        self.done += n
        self.detail = detail
        self._emit("advance")

    def __exit__(self, *exc: object) -> None:
        self._emit("end")


def track(
    items: Iterable[T], name: str, *, total: int | None = None, unit: str = "it", long: bool = False
) -> Iterator[T]:
    """``items`` one by one, reporting each as one unit of the task ``name``."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Task(name, total, unit=unit, long=long) as task:
        for item in items:
            yield item
            task.advance()


def collect(into: list[str]) -> Subscriber:
    """A subscriber that appends every message's text to ``into`` (tests, the benchmark's log)."""

    def subscriber(event: Event) -> None:
        if isinstance(event, Message):
            into.append(event.text)

    return subscriber
