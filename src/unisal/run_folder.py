"""One run's output folder: which files it holds, and an atomic write for each of them."""

from __future__ import annotations

import csv
import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from unisal.config import RunConfig, to_dict
from unisal.data.prepare import PreparedData
from unisal.errors import RunError
from unisal.io import (
    make_folder,
    save_torch_atomic,
    write_csv_atomic,
    write_json_atomic,
    write_scores_atomic,
    write_text_atomic,
)
from unisal.state import ALState

DAMAGED = "the run folder is damaged; restore the file or start again with a new --out"


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


ROUND_COLUMNS = [
    "round",
    "n_labeled",
    "n_val",
    "n_labeled_total",
    "accuracy",
    "macro_f1",
    "macro_precision",
    "macro_recall",
    "balanced_accuracy",
    "best_epoch",
    "val_accuracy",
]
# Wall-clock seconds differ from run to run: they go to timings.csv, so that two runs of the same
# command with the same threads write byte-identical rounds.csv files.
TIMING_COLUMNS = ["round", "train_seconds", "select_seconds"]


def round_columns(results: list[dict[str, Any]]) -> list[str]:
    """The fixed columns, then any statistic a strategy reported (e.g. ``n_candidates``)."""
    extra = [k for r in results for k in r if k not in ROUND_COLUMNS and k not in TIMING_COLUMNS]
    return ROUND_COLUMNS + list(dict.fromkeys(extra))


def read_round_rows(folder: str | Path) -> list[dict[str, str]]:
    """The rows of a run's ``rounds.csv`` with its ``timings.csv`` merged in (runs written before
    timings had their own file hold them in ``rounds.csv``)."""
    folder = Path(folder)
    with (folder / "rounds.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if (folder / "timings.csv").is_file():
        with (folder / "timings.csv").open(newline="") as handle:
            timings = {row["round"]: row for row in csv.DictReader(handle)}
        rows = [row | timings.get(row["round"], {}) for row in rows]
    return rows


LOCK_NAME = ".unisal.lock"
SUBFOLDERS = ("queries", "confusion", "checkpoints", "history", "stop_set", "diagnostics")


class RunFolder:
    """Paths and writes of ``unisal simulate --out``; every write is atomic.

    Layout: ``config.yaml``, ``state.json``, ``rounds.csv``, ``timings.csv``, ``splits.csv`` (and
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
        """A ``state.json`` that is a run's: beside a unisal ``config.yaml`` (then a damaged state
        is this run's, and said so on resume), or one that parses as a run's state. A user's
        file of that name is not."""
        if not self.state_file.is_file():
            return False
        if self.config_is_ours():
            return True
        try:
            self.read_state()
        except RunError:
            return False
        return True

    @property
    def lock_file(self) -> Path:
        return self.root / LOCK_NAME

    def config_is_ours(self) -> bool:
        """``config.yaml`` parses as the settings of a unisal run (not a file that has the name)."""
        try:
            values = yaml.safe_load(self.config_file.read_text())
        except (OSError, ValueError, yaml.YAMLError):
            return False
        sections = {"data", "model", "train", "query"}
        return isinstance(values, dict) and all(isinstance(values.get(k), dict) for k in sections)

    def foreign_entries(self) -> list[str]:
        """Names in the folder that are not a run's: a folder with these is someone else's.

        The names a run writes count as its own only where the folder's files say it is a run (a
        ``state.json``, or a ``config.yaml`` that parses as unisal's: a run stopped before its
        state); elsewhere a file called ``config.yaml`` or ``rounds.csv`` is the user's.
        """
        if not self.root.is_dir():
            return []
        ours = {LOCK_NAME}
        if self.holds_run() or self.config_is_ours():
            ours |= {
                "config.yaml",
                "state.json",
                "rounds.csv",
                "timings.csv",
                "splits.csv",
                "bad_images.csv",
                *SUBFOLDERS,
            }
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.name not in ours and not p.name.startswith(".state.json.tmp")
        )

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive OS lock on the folder (released when the process ends, even by kill -9).

        Raises:
            RunError: another process holds it.
        """
        make_folder(self.root)
        handle = self.lock_file.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RunError(
                f"another unisal process is using {self.root}; wait for it to end or choose another --out"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

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
        """``state.json``, ``rounds.csv`` and ``timings.csv`` (one row per finished round)."""
        write_json_atomic(self.state_file, state.state_dict())
        for name, columns in (("rounds.csv", round_columns(state.results)), ("timings.csv", TIMING_COLUMNS)):
            write_csv_atomic(
                self.root / name, columns, ([r.get(c, "") for c in columns] for r in state.results)
            )

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

    def write_stop_predictions(self, round_: int, paths: list[str], predicted: list[str]) -> None:
        """The round's predicted class of every stop-set image (the stopping criterion's input)."""
        write_csv_atomic(
            self.round_file("stop_set", round_), ["path", "predicted"], zip(paths, predicted, strict=True)
        )

    def write_diagnostics(self, round_: int, record: dict[str, Any]) -> None:
        """The round's collapse diagnostics (:func:`unisal.diagnostics.round_diagnostics`)."""
        write_json_atomic(self.root / "diagnostics" / f"round_{round_}.json", record, indent=2)

    def read_stop_predictions(self, round_: int) -> list[str] | None:
        """The predicted classes written by :meth:`write_stop_predictions`, or None if there are none."""
        path = self.round_file("stop_set", round_)
        if not path.is_file():
            return None
        with path.open(newline="") as handle:
            return [row["predicted"] for row in csv.DictReader(handle)]

    def write_confusion(self, round_: int, class_names: list[str], matrix: np.ndarray) -> None:
        write_csv_atomic(
            self.round_file("confusion", round_),
            ["true\\predicted", *class_names],
            ([name, *row.tolist()] for name, row in zip(class_names, matrix, strict=True)),
        )

    def write_queries(self, round_: int, rows: list[tuple[str, str, str, str]]) -> None:
        """One row per queried image: path, label, why it was picked, and its score (or blank)."""
        write_csv_atomic(self.round_file("queries", round_), ["path", "label", "reason", "score"], rows)

    def write_scores(self, round_: int, index: np.ndarray, scores: np.ndarray) -> None:
        """The strategy's score of every pool item it scored when choosing round ``round_``'s
        queries: ``scores/round_<k>.npz`` (:func:`unisal.io.write_scores_atomic`)."""
        write_scores_atomic(self.root / "scores" / f"round_{round_}.npz", index, scores)

    def save_checkpoint(self, round_: int, state: dict[str, Any]) -> None:
        save_torch_atomic(state, self.round_file("checkpoints", round_))

    # ---- reads
    def read_config(self) -> dict[str, Any]:
        try:
            values = yaml.safe_load(self.config_file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise RunError(f"cannot read {self.config_file} ({_short(exc)}): {DAMAGED}") from exc
        if not isinstance(values, dict):
            raise RunError(f"{self.config_file} does not hold the run's settings: {DAMAGED}")
        return values

    def read_state(self) -> ALState:
        try:
            return ALState.from_state_dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunError(f"cannot read {self.state_file} ({_short(exc)}): {DAMAGED}") from exc

    def read_splits_table(self) -> list[dict[str, str]]:
        """The rows of ``splits.csv``: path, label, group, split."""
        try:
            with (self.root / "splits.csv").open(newline="") as handle:
                rows = list(csv.DictReader(handle))
        except OSError as exc:
            raise RunError(f"cannot read {self.root / 'splits.csv'} ({_short(exc)}): {DAMAGED}") from exc
        if rows and not {"path", "label", "group", "split"} <= set(rows[0]):
            raise RunError(f"{self.root / 'splits.csv'} lacks the columns path,label,group,split: {DAMAGED}")
        return rows

    def read_split(self) -> np.ndarray:
        """(N,) split names recorded in ``splits.csv``."""
        with (self.root / "splits.csv").open(newline="") as handle:
            return np.asarray([row["split"] for row in csv.DictReader(handle)])

    def has_checkpoint(self, round_: int) -> bool:
        return self.round_file("checkpoints", round_).is_file()

    def load_checkpoint(self, round_: int) -> dict[str, Any]:
        path = self.round_file("checkpoints", round_)
        try:
            state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as exc:
            raise RunError(f"cannot read checkpoint {path}: {exc}") from exc
        return state
