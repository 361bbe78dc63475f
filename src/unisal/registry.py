"""Name -> implementation registries (strategies, learners, offline backbone weights).

A registration under a taken name is refused (the original stays); looking up an unknown
name is a ConfigError that lists the known ones.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from unisal.errors import ConfigError

T = TypeVar("T")


def unknown_name(kind: str, name: str, known: Sequence[str]) -> str:
    """``unknown strategy 'entrpy'; did you mean 'entropy'? expected one of [...]``."""
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown {kind} '{name}'; {hint}expected one of {list(known)}"


class Registry(Generic[T]):
    """Implementations of one kind (``kind`` names it in messages), by name."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator; a registered class gets ``name`` as its ``name`` attribute."""

        def decorator(item: T) -> T:
            if name in self._items:
                raise KeyError(f"{self.kind} '{name}' is already registered")
            if isinstance(item, type):
                item.name = name  # type: ignore[attr-defined]
            self._items[name] = item
            return item

        return decorator

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def get(self, name: str) -> T:
        if name not in self._items:
            raise ConfigError(unknown_name(self.kind, name, self.names()))
        return self._items[name]
