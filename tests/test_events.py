"""Events (unisal.events) and the command line's subscriber (unisal.cli.reporting)."""

from __future__ import annotations

import io
import logging
import threading

import pytest

from unisal.cli.reporting import Console
from unisal.events import Event, Message, Progress, Task, collect, emit, message, subscribed, track


def test_subscribers_see_the_events_of_their_block_only() -> None:
    outer: list[Event] = []
    inner: list[Event] = []
    with subscribed(outer.append):
        message("a")
        with subscribed(inner.append):
            message("b", topic="round")
        message("c")
    message("d")  # nobody subscribed: the logger's
    assert [e.text for e in outer if isinstance(e, Message)] == ["a", "b", "c"]
    assert inner == [Message("b", "round")]


def test_without_a_subscriber_messages_go_to_the_unisal_logger(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="unisal"):
        message("hello")
        with Task("work", 3) as task:  # progress without a subscriber goes nowhere
            task.advance()
    assert [r.getMessage() for r in caplog.records] == ["hello"]


def test_a_task_reports_start_advances_and_end_even_on_an_error() -> None:
    events: list[Event] = []
    with (
        subscribed(events.append),
        pytest.raises(RuntimeError),
        Task("decoding", 10, unit="img", long=True) as task,
    ):
        task.advance(4)
        task.advance(6, detail="last")
        raise RuntimeError("stop")
    stages = [(e.stage, e.done, e.detail) for e in events if isinstance(e, Progress)]
    assert stages == [("start", 0, ""), ("advance", 4, ""), ("advance", 10, "last"), ("end", 10, "last")]
    assert all(isinstance(e, Progress) and e.long and e.total == 10 and e.unit == "img" for e in events)


def test_track_yields_every_item_and_counts_it() -> None:
    events: list[Event] = []
    with subscribed(events.append):
        assert list(track(range(3), "scoring")) == [0, 1, 2]
    progress = [e for e in events if isinstance(e, Progress)]
    assert [e.done for e in progress] == [0, 1, 2, 3, 3] and progress[0].total == 3
    assert len({e.task for e in progress}) == 1


def test_a_thread_has_its_own_subscribers() -> None:
    main: list[str] = []
    other: list[str] = []

    def work() -> None:
        with subscribed(collect(other)):
            message("from the thread")

    with subscribed(collect(main)):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        message("from the main thread")
    assert main == ["from the main thread"] and other == ["from the thread"]


def _console_output(console_kwargs: dict, events: list[Event]) -> tuple[str, list[str]]:
    """What a Console draws (its bars, on a captured stderr) and echoes for ``events``."""
    import sys

    lines: list[str] = []
    err = io.StringIO()
    saved, sys.stderr = sys.stderr, err
    try:
        console = Console(echo=lines.append, **console_kwargs)
        for event in events:
            console(event)
        console.close()
    finally:
        sys.stderr = saved
    return err.getvalue(), lines


def _task(name: str, *, long: bool, task: int) -> list[Event]:
    return [
        Progress(task, name, "start", 0, 4, "img", long),
        Progress(task, name, "advance", 4, 4, "img", long),
        Progress(task, name, "end", 4, 4, "img", long),
    ]


def test_the_console_always_draws_long_work_and_steps_only_when_asked() -> None:
    events = [*_task("features lite0", long=True, task=1), *_task("co-training", long=False, task=2)]
    drawn, _ = _console_output({"steps": False}, events)
    assert "features lite0" in drawn and "co-training" not in drawn
    drawn, _ = _console_output({"steps": True}, events)
    assert "features lite0" in drawn and "co-training" in drawn
    drawn, _ = _console_output({"bars": False}, events)
    assert drawn == ""


def test_the_console_echoes_the_topics_it_is_given() -> None:
    events: list[Event] = [Message("benchmark: 2 arms"), Message("round 1: training", "round")]
    _, lines = _console_output({}, events)
    assert lines == ["benchmark: 2 arms", "round 1: training"]
    _, lines = _console_output({"topics": {"general"}}, events)
    assert lines == ["benchmark: 2 arms"]


def test_emit_delivers_to_every_subscriber_in_order() -> None:
    seen: list[str] = []
    with subscribed(lambda e: seen.append("first"), lambda e: seen.append("second")):
        emit(Message("x"))
    assert seen == ["first", "second"]
