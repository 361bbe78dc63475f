"""What a command shows while it works: a subscriber to the events (:mod:`unisal.events`) that
draws progress bars (tqdm, on stderr) and prints messages (click, on stdout).

Every command subscribes one :class:`Console` for its whole run: ``with reporting(...):``. Long
work (a cache, a download) always shows its bar, so that a first feature cache of 10-30 minutes is
never silent; the short tasks of a round (training steps, scoring) only where the command was
asked for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from tqdm import tqdm

from unisal.events import Event, Message, Progress, subscribed


class Console:
    """Draws :class:`Progress` as tqdm bars and echoes :class:`Message` lines.

    Args:
        steps: also draw the short tasks (training, scoring); long tasks are always drawn.
        bars: draw any bar at all (``--quiet`` turns them off; messages still print).
        topics: the message topics to print; None: every one.
        echo: where lines go.
    """

    def __init__(
        self,
        *,
        steps: bool = True,
        bars: bool = True,
        topics: set[str] | None = None,
        echo: Callable[[str], Any] = click.echo,
    ):
        self.steps, self.bars, self.topics, self.echo = steps, bars, topics, echo
        self._bars: dict[int, tqdm] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, Message):
            if self.topics is None or event.topic in self.topics:
                if self._bars:
                    tqdm.write(event.text)
                else:
                    self.echo(event.text)
        elif isinstance(event, Progress) and self.bars and (event.long or self.steps):
            self._progress(event)

    def _progress(self, event: Progress) -> None:
        bar = self._bars.get(event.task)
        if event.stage == "start" or bar is None:
            if event.stage == "end":
                return
            bar = self._bars[event.task] = tqdm(
                total=event.total,
                initial=event.done,
                desc=event.name,
                unit=event.unit,
                unit_scale=event.unit == "B",
                leave=event.long,
            )
        if event.stage == "advance":
            bar.update(event.done - bar.n)
            if event.detail:
                bar.set_postfix_str(event.detail, refresh=False)
        elif event.stage == "end":
            bar.close()
            del self._bars[event.task]

    def close(self) -> None:
        """Close the bars of tasks that never reported their end (an error left them open)."""
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


@contextmanager
def reporting(*, steps: bool = True, bars: bool = True, topics: set[str] | None = None) -> Iterator[Console]:
    """Subscribe a :class:`Console` to this command's events until the block ends."""
    console = Console(steps=steps, bars=bars, topics=topics)
    try:
        with subscribed(console):
            yield console
    finally:
        console.close()
