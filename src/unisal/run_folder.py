"""One run's output folder: which files it holds, and an atomic write for each of them."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from unisal.config import RunConfig, to_dict
from unisal.data.prepare import PreparedData
from unisal.errors import RunError
from unisal.io import save_torch_atomic, write_csv_atomic, write_json_atomic, write_text_atomic
from unisal.state import ALState

ROUND_COLUMNS = [
    "round",
    "n_labeled",
    "accuracy",
    "macro_f1",
    "macro_precision",
    "macro_recall",
    "train_seconds",
    "select_seconds",
    "best_epoch",
    "val_accuracy",
]


def round_columns(results: list[dict[str, Any]]) -> list[str]:
    """The fixed columns, then any statistic a strategy reported (e.g. ``n_candidates``)."""
    extra = [k for r in results for k in r if k not in ROUND_COLUMNS]
    return ROUND_COLUMNS + list(dict.fromkeys(extra))


SUBFOLDERS = ("queries", "confusion", "checkpoints", "history")


class RunFolder:
    """Paths and writes of ``unisal simulate --out``; every write is atomic.

    Layout: ``config.yaml``, ``state.json``, ``rounds.csv``, ``splits.csv`` (and
    ``bad_images.csv``), and per round ``queries/``, ``confusion/``, ``history/`` and
    ``checkpoints/round_<k>``.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"

    def holds_run(self) -> bool:
        return self.state_file.is_file()

    def round_file(self, kind: str, round_: int) -> Path:
        """``<kind>/round_<k>.csv``, or ``.pt`` for checkpoints."""
        suffix = ".pt" if kind == "checkpoints" else ".csv"
        return self.root / kind / f"round_{round_}{suffix}"

    # ---- writes
    def create(self) -> None:
        for sub in SUBFOLDERS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def write_config(self, cfg: RunConfig) -> None:
        write_text_atomic(self.config_file, yaml.safe_dump(to_dict(cfg), sort_keys=False))

    def write_state(self, state: ALState) -> None:
        """``state.json`` and ``rounds.csv`` (one row per finished round)."""
        write_json_atomic(self.state_file, state.state_dict())
        columns = round_columns(state.results)
        rows = [[r.get(c, "") for c in columns] for r in state.results]
        write_csv_atomic(self.root / "rounds.csv", columns, rows)

    def write_splits(self, data: PreparedData) -> None:
        cat = data.catalogue
        rows = (
            (
                cat.relative(i),
                cat.class_names[cat.labels[i]] if cat.labels[i] >= 0 else "",
                int(cat.groups[i]),
                data.split[i],
            )
            for i in range(len(cat))
        )
        write_csv_atomic(self.root / "splits.csv", ["path", "label", "group", "split"], rows)
        if data.bad:
            write_csv_atomic(
                self.root / "bad_images.csv", ["path", "reason"], ((e.path, e.reason) for e in data.bad)
            )

    def write_history(self, round_: int, history: list[dict[str, float]]) -> None:
        columns = list(dict.fromkeys(k for record in history for k in record))
        write_csv_atomic(
            self.round_file("history", round_),
            columns,
            ([record.get(c, "") for c in columns] for record in history),
        )

    def write_confusion(self, round_: int, class_names: list[str], matrix: np.ndarray) -> None:
        write_csv_atomic(
            self.round_file("confusion", round_),
            ["true\\predicted", *class_names],
            ([name, *row.tolist()] for name, row in zip(class_names, matrix, strict=True)),
        )

    def write_queries(self, round_: int, rows: list[tuple[str, str, str, str]]) -> None:
        """One row per queried image: path, label, why it was picked, and its score (or blank)."""
        write_csv_atomic(self.round_file("queries", round_), ["path", "label", "reason", "score"], rows)

    def save_checkpoint(self, round_: int, state: dict[str, Any]) -> None:
        save_torch_atomic(state, self.round_file("checkpoints", round_))

    # ---- reads
    def read_config(self) -> dict[str, Any]:
        try:
            values = yaml.safe_load(self.config_file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise RunError(f"cannot read {self.config_file}: {exc}") from exc
        if not isinstance(values, dict):
            raise RunError(f"{self.config_file} does not hold a mapping")
        return values

    def read_state(self) -> ALState:
        try:
            return ALState.from_state_dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunError(f"cannot read {self.state_file}: {exc}") from exc

    def read_split(self) -> np.ndarray:
        """(N,) split names recorded in ``splits.csv``."""
        with (self.root / "splits.csv").open(newline="") as handle:
            return np.asarray([row["split"] for row in csv.DictReader(handle)])

    def load_checkpoint(self, round_: int) -> dict[str, Any]:
        path = self.round_file("checkpoints", round_)
        try:
            state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as exc:
            raise RunError(f"cannot read checkpoint {path}: {exc}") from exc
        return state
