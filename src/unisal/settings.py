"""A run's settings resolved: the configuration (preset, YAML file, flags, see
:mod:`unisal.config`), then every name that a registry implements (``query.strategy``,
``learner.name``, ``data.format``) checked against that registry.

The configuration cannot check those names itself without importing the strategies, learners
and readers, the layers above it; this module sits above all of them and is where a command,
the benchmark and a labelling project get a checked configuration before any work starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from unisal.config import RunConfig, apply_overrides, build_config, check_field
from unisal.data.readers import data_formats
from unisal.learners import learner_names
from unisal.query import strategy_names

# registry kind (as a schema field's ``registry=`` names it) -> its names, looked up when checked
REGISTERED: dict[str, Callable[[], Sequence[str]]] = {
    "data format": data_formats,
    "learner": learner_names,
    "strategy": strategy_names,
}


def registered_names(kind: str) -> list[str]:
    """The names a field of registry ``kind`` may take (``strategy``: every registered strategy)."""
    return list(REGISTERED[kind]())


def check_names(obj: Any, where: str = "", *, what: str = "config key") -> None:
    """Every field of a config dataclass (recursively) that names a registry's entry is one of its
    names; ConfigError with the key, the known names and the closest one otherwise."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            check_names(value, f"{where}{f.name}.", what=what)
        elif "registry" in f.metadata:
            check_field(
                f"{where}{f.name}",
                value,
                str,
                {"choices": registered_names(f.metadata["registry"])},
                what=what,
            )


def resolve_config(
    preset: str = "cpu",
    file_values: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """Preset, then YAML values, then flag overrides (nested dicts): types, ranges and names checked."""
    cfg = build_config(preset, file_values, overrides)
    check_names(cfg)
    return cfg


def override_config(cfg: RunConfig, values: dict[str, Any]) -> None:
    """Set the nested ``values`` on ``cfg`` in place, then check types, ranges and names."""
    apply_overrides(cfg, values)
    check_names(cfg)
