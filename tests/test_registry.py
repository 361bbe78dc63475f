"""The generic name -> implementation registry behind strategies, learners and offline weights."""

from __future__ import annotations

import pytest

from unisal.config import ConfigError
from unisal.registry import Registry


def test_register_get_and_list() -> None:
    registry: Registry[type] = Registry("widget")

    @registry.register("b")
    class B:
        name = "unset"

    registry.register("a")(type("A", (), {}))
    assert registry.names() == ["a", "b"]
    assert registry.get("b") is B and B.name == "b"
    assert "a" in registry and "c" not in registry


def test_a_taken_name_is_refused_and_the_original_kept() -> None:
    registry: Registry[object] = Registry("widget")
    registry.register("x")(len)
    with pytest.raises(KeyError, match="widget 'x' is already registered"):
        registry.register("x")(print)
    assert registry.get("x") is len


def test_an_unknown_name_lists_the_known_ones() -> None:
    registry: Registry[object] = Registry("widget")
    registry.register("spoke")(len)
    with pytest.raises(
        ConfigError, match=r"unknown widget 'spook'; did you mean 'spoke'\? expected one of \['spoke'\]"
    ):
        registry.get("spook")
    with pytest.raises(ConfigError, match=r"unknown widget 'gear'; expected one of \['spoke'\]"):
        registry.get("gear")
