"""Merging and checking configuration values: a preset, then a YAML file, then flags, each
value checked against its field's type and declared range, then the rules between values.

The checker (:func:`check_field`) also serves the parameters of strategies and the settings of a
labelling project, so that every value a user types is checked, and explained, the same way.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import typing
from collections.abc import Sequence
from pathlib import Path
from types import UnionType
from typing import Any, Union

import yaml

from unisal.config.presets import PRESETS
from unisal.config.schema import RunConfig
from unisal.errors import ConfigError

# keys renamed since: old name -> new name (config files, benchmark.yaml and run folders written
# before keep working)
RENAMED_KEYS = {"features.score": "predict_views"}


def _merge_into(obj: Any, values: dict[str, Any], where: str) -> None:
    names = {f.name: f for f in dataclasses.fields(obj)}
    for old, new in ((k, RENAMED_KEYS[f"{where}{k}"]) for k in list(values) if f"{where}{k}" in RENAMED_KEYS):
        if new in values:
            raise ConfigError(
                f"config keys '{where}{old}' and '{where}{new}' are one setting (renamed); give one"
            )
        values = {(new if k == old else k): v for k, v in values.items()}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"unknown config key '{where}{key}'; expected one of {sorted(names)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{where}{key}' must be a mapping")
            _merge_into(current, value, f"{where}{key}.")
        else:
            setattr(obj, key, value)


def build_config(
    preset: str = "cpu",
    file_values: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """Preset, then YAML values, then flag overrides (nested dicts), validated."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset '{preset}'; expected one of {sorted(PRESETS)}")
    cfg = RunConfig(preset=preset)
    _merge_into(cfg, PRESETS[preset], "")
    for values in (file_values or {}, overrides or {}):
        _merge_into(cfg, values, "")
    validate(cfg)
    return cfg


def apply_overrides(cfg: RunConfig, values: dict[str, Any]) -> None:
    """Set the nested ``values`` on ``cfg`` in place (unknown keys are an error), then validate."""
    _merge_into(cfg, values, "")
    validate(cfg)


def load_yaml(path: str | Path) -> dict[str, Any]:
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte at offset {exc.start})") from None
    except RecursionError:
        raise ConfigError(f"config file {path} is nested too deeply") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return values


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _choices(meta: dict[str, Any]) -> Sequence[str]:
    """A field's allowed values."""
    return meta["choices"]


def _describe(meta: dict[str, Any]) -> str:
    """``>= 1``, ``in (0, 1)``, ``one of [...]``: the allowed values of a field, in words."""
    if "choices" in meta:
        return f"one of {list(_choices(meta))}"
    low = next(((k, meta[k]) for k in ("ge", "gt") if k in meta), None)
    high = next(((k, meta[k]) for k in ("le", "lt") if k in meta), None)
    if low and high:
        return f"in {'[' if low[0] == 'ge' else '('}{_number(low[1])}, {_number(high[1])}{']' if high[0] == 'le' else ')'}"
    if low:
        return f"{'>=' if low[0] == 'ge' else '>'} {_number(low[1])}"
    if high:
        return f"{'<=' if high[0] == 'le' else '<'} {_number(high[1])}"
    return ""


def check_field(key: str, value: Any, kind: Any, meta: dict[str, Any], *, what: str = "config key") -> Any:
    """``value`` checked against the annotation ``kind`` and the declared range (``meta``, as
    :func:`~unisal.config.schema.setting` stores it); returns it (ints given for float fields become
    floats). Raises ConfigError naming ``what`` and ``key`` (``config key 'train.lr'``) and what is
    allowed."""
    args = typing.get_args(kind)
    optional = type(None) in args
    base = (
        next((a for a in args if a is not type(None)), kind)
        if args and typing.get_origin(kind) in (Union, UnionType)
        else kind
    )
    allowed = _describe(meta) + (" (or null)" if optional and meta else "")
    if value is None:
        if optional:
            return None
        raise ConfigError(
            f"{what} '{key}' must be set (got null){'; allowed: ' + allowed if allowed else ''}"
        )
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{what} '{key}' must be true or false, not {value!r}")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(
                f"{what} '{key}' must be a whole number {allowed}, not {value!r}".replace("  ", " ")
            )
    elif base is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(
                f"{what} '{key}' must be a finite number {allowed}, not {value!r}".replace("  ", " ")
            )
        value = float(value)
    elif base is str:
        if not isinstance(value, str):
            raise ConfigError(f"{what} '{key}' must be a text, not {value!r}")
    elif typing.get_origin(base) is dict or base is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{what} '{key}' must be a mapping, not {value!r}")
        return value
    if "choices" in meta and value not in _choices(meta):
        close = difflib.get_close_matches(str(value), list(_choices(meta)), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"{what} '{key}' must be {allowed}, not {value!r}{hint}")
    bounds = {
        "ge": lambda v, b: v >= b,
        "gt": lambda v, b: v > b,
        "le": lambda v, b: v <= b,
        "lt": lambda v, b: v < b,
    }
    if any(k in meta and not ok(value, meta[k]) for k, ok in bounds.items()):
        raise ConfigError(f"{what} '{key}' must be {allowed}, not {value!r}")
    return value


def check_values(obj: Any, where: str = "", *, what: str = "config key") -> None:
    """Check every field of a config dataclass (recursively) against its type and declared range;
    ``what`` names the kind of value in messages (``project setting 'budget' must be ...``)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            check_values(value, f"{where}{f.name}.", what=what)
            continue
        setattr(
            obj, f.name, check_field(f"{where}{f.name}", value, hints[f.name], dict(f.metadata), what=what)
        )


def validate(cfg: RunConfig) -> None:
    """Every value's type and range (from the dataclasses), then the rules between values."""
    check_values(cfg)
    checks = [
        (
            cfg.data.val_size is not None or cfg.data.val_fraction + cfg.data.test_fraction < 0.9,
            "data.val_fraction + data.test_fraction leave too little to train on (their sum must be < 0.9)",
        ),
        (
            cfg.learner.mode != "cotrain" or cfg.learner.networks == 2,
            "learner.mode cotrain trains two networks: learner.networks must be 2",
        ),
        (
            cfg.data.decoder == "pil" or cfg.data.pixel_cache != "keep",
            f"--decoder {cfg.data.decoder} decodes pixels that are streamed, not kept: "
            "drop --pixel-cache keep or the decoder",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def absolute_paths(cfg: RunConfig) -> RunConfig:
    """Data, groups, cache and local weights paths made absolute, so that a run folder works from
    any directory (``unisal supervised``, ``--resume``). URLs stay as they are."""

    def absolute(path: str | None) -> str | None:
        return None if not path or "://" in path else os.path.abspath(Path(path).expanduser())

    cfg.data.path = absolute(cfg.data.path) or cfg.data.path
    cfg.data.groups = absolute(cfg.data.groups)
    cfg.data.cache_dir = absolute(cfg.data.cache_dir)
    if cfg.model.weights and "://" not in cfg.model.weights:
        cfg.model.weights = absolute(cfg.model.weights)
    cfg.out = absolute(cfg.out) or cfg.out
    return cfg


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(values: dict[str, Any]) -> RunConfig:
    cfg = RunConfig()
    _merge_into(cfg, values, "")
    return cfg
