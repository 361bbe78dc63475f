"""Whether a run folder may take a run, and whether a resumed run is the run it continues: the
same settings (``changed_settings``), the same data and split (``splits.csv``), and a state that
labels only training images."""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

import numpy as np

from unisal.config import ConfigError, RunConfig, from_dict, to_dict
from unisal.data.prepare import PreparedData
from unisal.errors import RunError
from unisal.events import message
from unisal.run_folder import DAMAGED, RunFolder
from unisal.state import ALState


def _comparable(values: dict[str, Any]) -> dict[str, Any]:
    """Settings that must not change when a run is resumed."""
    with contextlib.suppress(ConfigError, TypeError):  # settings added since: their defaults
        values = to_dict(from_dict(values))
    values = json.loads(json.dumps(values))
    data = values.get("data", {})
    for key in ("path", "groups"):  # runs written before paths were stored absolute
        if isinstance(data.get(key), str) and data[key] and "://" not in data[key]:
            data[key] = os.path.abspath(data[key])
    for key in ("device", "threads", "out", "rounds"):  # a resumed run may be extended by more rounds
        values.pop(key, None)
    values.get("data", {}).pop("cache_dir", None)
    values.get("train", {}).pop("eval_batch_size", None)
    values.get("features", {}).pop("batch_size", None)
    values.get("features", {}).pop("shard_images", None)  # how the cache is written, not what it holds
    values.get("features", {}).pop("engine", None)  # any engine gives the same cached features
    return values


def _differences(run: dict[str, Any], now: dict[str, Any], where: str = "") -> list[str]:
    """``key: run X, now Y`` for every setting that differs between two nested dicts."""
    out = []
    for key in sorted(set(run) | set(now), key=str):
        a, b = run.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{where}{key}.")
        elif a != b:
            out.append(f"{where}{key}: run {json.dumps(a)}, now {json.dumps(b)}")
    return out


def changed_settings(saved: dict[str, Any], cfg: RunConfig) -> str:
    """The settings of ``cfg`` that a resumed run may not change and that differ from ``saved``
    (a run's config.yaml), in words (``"query.budget: run 3, now 5"``); empty when none do."""
    changed = _differences(_comparable(saved), _comparable(to_dict(cfg)))
    return "; ".join(changed[:3]) + ("; ..." if len(changed) > 3 else "")


def check_folder(folder: RunFolder, cfg: RunConfig, *, resume: bool) -> None:
    """``--out`` may take this run: a new or empty folder, a run that stopped before its first
    result (started again), or with ``resume`` a run of the same settings. RunError otherwise."""
    if folder.root.exists() and not folder.root.is_dir():
        raise RunError(f"--out {folder.root} is a file, not a folder")
    if not resume:
        if folder.holds_run():
            if restartable(folder, cfg):
                message(f"{folder.root} holds a run that stopped before its first result: starting it again")
                return
            raise RunError(
                f"{folder.root} already holds a run; pass --resume to continue it or choose another --out"
            )
        foreign = folder.foreign_entries()
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise RunError(
                f"--out {folder.root} is not empty and holds no unisal run ({shown}); choose a new or empty folder"
            )
        return
    if not folder.holds_run():
        raise RunError(f"--resume: no run to resume in {folder.root} (state.json missing)")
    changed = changed_settings(folder.read_config(), cfg)
    if changed:
        raise RunError(
            f"--resume: the settings differ from those of the run in {folder.root} ({changed}); "
            f"resume with the same settings (--config {folder.root / 'config.yaml'} holds them) or start a new --out"
        )


def restartable(folder: RunFolder, cfg: RunConfig) -> bool:
    """A run with the same settings that has no result yet (it failed or was killed in round 0)."""
    try:
        state = folder.read_state()
        same = not changed_settings(folder.read_config(), cfg)
    except RunError:
        return False
    return same and not state.results and state.round == 0


def check_resumed(folder: RunFolder, data: PreparedData, state: ALState) -> None:
    """The data must be those the run started with (``splits.csv``), and the state must label
    only training-pool images: a test image must never reach training."""
    cat = data.catalogue
    saved = folder.read_splits_table()
    if len(saved) != len(cat):
        raise RunError(
            f"--resume: the data set had {len(saved)} images when the run started and has {len(cat)} now; "
            "resume with the same data or start a new --out"
        )
    changed = []
    for i, row in enumerate(saved):
        label = cat.class_names[cat.labels[i]] if cat.labels[i] >= 0 else ""
        now = (cat.relative(i), label, str(int(cat.groups[i])), str(data.split[i]))
        before = (row["path"], row["label"], row["group"], row["split"])
        if now != before:
            what = [
                n for n, a, b in zip(("path", "label", "group", "split"), before, now, strict=True) if a != b
            ]
            changed.append(f"{before[0]} ({', '.join(what)})")
    if changed:
        raise RunError(
            f"--resume: {len(changed)} image(s) differ from the run's splits.csv, e.g. {changed[0]}; "
            "resume with the same data and groups or start a new --out"
        )
    if len(state.labelled_round) != len(cat):
        raise RunError(f"--resume: state.json covers {len(state.labelled_round)} images, the data {len(cat)}")
    outside = np.setdiff1d(state.labelled(), data.idx_train)
    if len(outside):
        raise RunError(
            f"--resume: state.json labels {len(outside)} image(s) outside the training pool, e.g. "
            f"{cat.relative(int(outside[0]))} ({data.split[outside[0]]}): {DAMAGED}"
        )
