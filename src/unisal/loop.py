"""The simulated active-learning loop: train -> evaluate -> score pool -> select -> label.

The state is one object with *absolute* catalogue indices and the round at which each image
was labelled. It is written atomically after every step, together with the trained networks,
so that ``resume`` continues a killed run without redoing finished work. Every random draw of
round ``r`` comes from a generator seeded by ``(seed, r, purpose)``, which makes a resumed run
end with the same queries and metrics as an uninterrupted one on the same machine.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from unisal.config import RunConfig, to_dict
from unisal.data.cache import ImageStore, build_cache
from unisal.data.catalogue import Catalogue, DataError, load_catalogue
from unisal.data.images import BadImageError
from unisal.data.splits import TEST, TRAIN, VAL, grouped_split
from unisal.models.network import TwoHeadNet, build_network
from unisal.query import create_strategy
from unisal.train.evaluate import evaluate, predict
from unisal.train.fit import fit

NOT_LABELLED = -1
ROUND_COLUMNS = [
    "round",
    "n_labeled",
    "accuracy",
    "macro_f1",
    "macro_precision",
    "macro_recall",
    "n_candidates",
    "train_seconds",
    "select_seconds",
    "best_epoch",
    "val_accuracy",
]


class RunError(RuntimeError):
    """The run cannot start or continue; the message says what to change."""


# --------------------------------------------------------------------------- small helpers


def round_seed(seed: int, round_: int, purpose: str) -> int:
    """A stable 31-bit seed for one purpose in one round."""
    purposes = {"init": 0, "train": 1, "select": 2, "subset": 3, "initial": 4}
    return int(np.random.SeedSequence([seed, round_, purposes[purpose]]).generate_state(1)[0] >> 1)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda was asked for, but PyTorch sees no CUDA device")
    return device


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_csv_atomic(path: Path, header: list[str], rows: Iterable[Iterable[Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)


def save_torch_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- state


@dataclass
class ALState:
    """Which images are labelled, since when, and where the loop stands.

    Attributes:
        labelled_round: (N,) int; round at which each catalogue image was labelled (0 for the
            initial set), ``NOT_LABELLED`` otherwise.
        round: the round the loop is in.
        stage: next step of that round: ``train``, ``select`` or ``done``.
        results: one dict of metrics per finished round.
    """

    labelled_round: np.ndarray
    round: int = 0
    stage: str = "train"
    results: list[dict[str, Any]] = field(default_factory=list)

    def labelled(self) -> np.ndarray:
        """Absolute indices of labelled images, ascending."""
        return np.flatnonzero(self.labelled_round != NOT_LABELLED)

    def label(self, indices: np.ndarray, round_: int) -> None:
        if np.any(self.labelled_round[indices] != NOT_LABELLED):
            raise RunError("refusing to label an image twice")
        self.labelled_round[indices] = round_

    def state_dict(self) -> dict[str, Any]:
        return {
            "labelled_round": self.labelled_round.tolist(),
            "round": self.round,
            "stage": self.stage,
            "results": self.results,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ALState:
        return cls(
            labelled_round=np.asarray(state["labelled_round"], np.int64),
            round=int(state["round"]),
            stage=str(state["stage"]),
            results=list(state["results"]),
        )


# --------------------------------------------------------------------------- data preparation


@dataclass
class PreparedData:
    catalogue: Catalogue
    store: ImageStore
    split: np.ndarray  # (N,) train | val | test
    bad: list[BadImageError]

    def indices(self, name: str) -> np.ndarray:
        """Absolute indices of the labelled images of split ``name``."""
        return np.flatnonzero((self.split == name) & (self.catalogue.labels >= 0))


def prepare_data(cfg: RunConfig, progress: bool = True) -> PreparedData:
    """Read the catalogue, decode it into the cache, drop or refuse bad files, split by group."""
    catalogue = load_catalogue(cfg.data.path, cfg.data.format, cfg.data.groups)
    array, bad = build_cache(catalogue.paths, cfg.data.image_size, cfg.data.cache_dir, progress=progress)
    rows = np.arange(len(catalogue))
    if bad:
        if not cfg.data.skip_bad_images:
            listing = "\n  ".join(f"{e.path}: {e.reason}" for e in bad[:10])
            more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
            raise DataError(
                f"{len(bad)} image(s) cannot be read:\n  {listing}{more}\n"
                "fix or remove them, or pass --skip-bad-images to leave them out"
            )
        keep = np.ones(len(catalogue), bool)
        bad_paths = {e.path for e in bad}
        keep[[i for i, p in enumerate(catalogue.paths) if p in bad_paths]] = False
        catalogue, rows = catalogue.subset(keep), rows[keep]
    if (catalogue.labels >= 0).sum() == 0:
        raise DataError("no labelled images: a simulation needs labels to act as the oracle")
    split = grouped_split(
        catalogue.labels, catalogue.groups, cfg.data.val_fraction, cfg.data.test_fraction, cfg.seed
    )
    return PreparedData(catalogue, ImageStore(array, rows), split, bad)


def write_splits(out: Path, data: PreparedData) -> None:
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
    write_csv_atomic(out / "splits.csv", ["path", "label", "group", "split"], rows)
    if data.bad:
        write_csv_atomic(out / "bad_images.csv", ["path", "reason"], ((e.path, e.reason) for e in data.bad))


# --------------------------------------------------------------------------- the loop


class ActiveLearningRun:
    """A simulated AL experiment in one output folder; oracle labels come from the catalogue."""

    def __init__(self, cfg: RunConfig, resume: bool = False, progress: bool = True, log: Any = print):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.progress = progress
        self.log = log
        self.device = resolve_device(cfg.device)
        self._check_out_folder(resume)
        self.data = prepare_data(cfg, progress)
        self.strategy = create_strategy(
            cfg.query.strategy,
            kmeans_n_init=cfg.query.kmeans_n_init,
            class_names=self.data.catalogue.class_names,
        )
        self.idx_pool = self.data.indices(TRAIN)
        self.idx_unlabelled_extra = np.flatnonzero(
            (self.data.split == TRAIN) & (self.data.catalogue.labels < 0)
        )
        self.idx_val = self.data.indices(VAL)
        self.idx_test = self.data.indices(TEST)
        self._check_sizes()
        self.state = self._load_or_start(resume)
        self.nets: list[TwoHeadNet] | None = None

    # ---- set-up and validation
    def _comparable_config(self, values: dict[str, Any]) -> dict[str, Any]:
        values = json.loads(json.dumps(values))
        for key in ("device", "out", "rounds"):  # a resumed run may be extended by more rounds
            values.pop(key, None)
        values["data"].pop("cache_dir", None)
        values["train"].pop("eval_batch_size", None)
        return values

    def _check_out_folder(self, resume: bool) -> None:
        state_file = self.out / "state.json"
        if resume:
            if not state_file.is_file():
                raise RunError(f"--resume: no run to resume in {self.out} (state.json missing)")
            saved = yaml.safe_load((self.out / "config.yaml").read_text())
            if self._comparable_config(saved) != self._comparable_config(to_dict(self.cfg)):
                raise RunError(
                    f"--resume: the settings differ from those of the run in {self.out}; "
                    "resume with the same settings (see its config.yaml) or start a new --out"
                )
        elif state_file.is_file():
            raise RunError(
                f"{self.out} already holds a run; pass --resume to continue it or choose another --out"
            )
        for sub in ("queries", "confusion", "checkpoints", "history"):
            (self.out / sub).mkdir(parents=True, exist_ok=True)
        write_atomic(self.out / "config.yaml", yaml.safe_dump(to_dict(self.cfg), sort_keys=False))

    def _check_sizes(self) -> None:
        cfg, pool = self.cfg, len(self.idx_pool)
        if pool == 0:
            raise RunError("the training pool is empty after the split")
        need = cfg.initial + cfg.rounds * cfg.query.budget
        if need > pool:
            raise RunError(
                f"initial ({cfg.initial}) + rounds ({cfg.rounds}) x budget ({cfg.query.budget}) = {need} "
                f"labels, but the training pool holds only {pool} images"
            )
        if len(self.idx_test) == 0:
            raise RunError("the test split is empty; add images or raise test_fraction")

    def _load_or_start(self, resume: bool) -> ALState:
        if resume:
            state = ALState.from_state_dict(json.loads((self.out / "state.json").read_text()))
            if len(state.labelled_round) != len(self.data.catalogue):
                raise RunError("--resume: the data set has changed since the run started")
            if self.cfg.rounds < state.round:
                raise RunError(f"--resume: the run in {self.out} has already reached round {state.round}")
            if state.stage == "done" and self.cfg.rounds > state.round:
                state.stage = "select"  # extend a finished run: query after its last round
            self.log(f"resuming {self.out} at round {state.round} ({state.stage})")
            return state
        write_splits(self.out, self.data)
        state = ALState(np.full(len(self.data.catalogue), NOT_LABELLED, np.int64))
        rng = np.random.default_rng(round_seed(self.cfg.seed, 0, "initial"))
        state.label(np.sort(rng.choice(self.idx_pool, size=self.cfg.initial, replace=False)), 0)
        self._save_state(state)
        return state

    def _save_state(self, state: ALState) -> None:
        write_atomic(self.out / "state.json", json.dumps(state.state_dict()))
        rows = [[r.get(c, "") for c in ROUND_COLUMNS] for r in state.results]
        write_csv_atomic(self.out / "rounds.csv", ROUND_COLUMNS, rows)

    # ---- steps
    def _new_nets(self, round_: int) -> list[TwoHeadNet]:
        n_classes = len(self.data.catalogue.class_names)
        seed = round_seed(self.cfg.seed, round_, "init")
        return [build_network(self.cfg.model, n_classes, seed + k) for k in range(2)]

    def _checkpoint_path(self, round_: int) -> Path:
        return self.out / "checkpoints" / f"round_{round_}.pt"

    def train_and_evaluate(self, round_: int) -> dict[str, Any]:
        cat, state = self.data.catalogue, self.state
        idx_lb = state.labelled()
        idx_ulb = np.concatenate([np.setdiff1d(self.idx_pool, idx_lb), self.idx_unlabelled_extra])
        self.nets = self._new_nets(round_)
        torch.manual_seed(round_seed(self.cfg.seed, round_, "train"))
        result = fit(
            self.nets,
            self.data.store,
            idx_lb,
            cat.labels[idx_lb],
            idx_ulb,
            self.idx_val,
            cat.labels[self.idx_val],
            self.cfg.train,
            self.device,
            seed=round_seed(self.cfg.seed, round_, "train"),
            progress=self.progress,
        )
        columns = list(dict.fromkeys(k for record in result.history for k in record))
        write_csv_atomic(
            self.out / "history" / f"round_{round_}.csv",
            columns,
            ([record.get(c, "") for c in columns] for record in result.history),
        )
        metrics, matrix = evaluate(
            self.nets,
            self.data.store,
            self.idx_test,
            cat.labels[self.idx_test],
            self.device,
            self.cfg.train.eval_batch_size,
            self.progress,
        )
        write_csv_atomic(
            self.out / "confusion" / f"round_{round_}.csv",
            ["true\\predicted", *cat.class_names],
            ([name, *row.tolist()] for name, row in zip(cat.class_names, matrix, strict=True)),
        )
        save_torch_atomic(
            {"round": round_, "class_names": cat.class_names, "nets": [n.state_dict() for n in self.nets]},
            self._checkpoint_path(round_),
        )
        return {
            "round": round_,
            "n_labeled": len(idx_lb),
            **{k: round(v, 6) for k, v in metrics.items()},
            "train_seconds": round(result.seconds, 2),
            "best_epoch": result.best_epoch,
            "val_accuracy": "" if result.best_val_accuracy is None else round(result.best_val_accuracy, 6),
        }

    def select_and_label(self, round_: int) -> dict[str, Any]:
        cat, state, cfg = self.data.catalogue, self.state, self.cfg
        start = time.perf_counter()
        unlabelled = np.setdiff1d(self.idx_pool, state.labelled())
        if cfg.query.pool_subset and len(unlabelled) > cfg.query.pool_subset:
            rng_subset = np.random.default_rng(round_seed(cfg.seed, round_, "subset"))
            unlabelled = np.sort(rng_subset.choice(unlabelled, size=cfg.query.pool_subset, replace=False))
        preds = None
        if self.strategy.needs_predictions:
            if self.nets is None:  # resumed between training and selection
                self.nets = self._new_nets(round_)
                saved = torch.load(self._checkpoint_path(round_), map_location="cpu", weights_only=True)
                for net, weights in zip(self.nets, saved["nets"], strict=True):
                    net.load_state_dict(weights)
                    net.to(self.device)
            preds = predict(
                self.nets,
                self.data.store,
                unlabelled,
                self.device,
                cfg.train.eval_batch_size,
                self.progress,
                desc="scoring pool",
            )
        rng = np.random.default_rng(round_seed(cfg.seed, round_, "select"))
        selection = self.strategy.select(preds, len(unlabelled), cfg.query.budget, rng)
        chosen = unlabelled[selection.positions]
        if len(np.unique(chosen)) != len(chosen):
            raise RunError(f"strategy '{self.strategy.name}' returned duplicate images")
        write_csv_atomic(
            self.out / "queries" / f"round_{round_ + 1}.csv",
            ["path", "label", "reason"],
            (
                (cat.relative(i), cat.class_names[cat.labels[i]], why)
                for i, why in zip(chosen, selection.reasons, strict=True)
            ),
        )
        state.label(chosen, round_ + 1)  # the oracle: simulation reveals the true labels
        return {
            "n_candidates": selection.n_candidates,
            "select_seconds": round(time.perf_counter() - start, 2),
        }

    def run(self) -> list[dict[str, Any]]:
        state = self.state
        while state.stage != "done":
            r = state.round
            if state.stage == "train":
                self.log(f"round {r}: training on {len(state.labelled())} labelled images")
                state.results = [x for x in state.results if x["round"] != r] + [self.train_and_evaluate(r)]
                row = state.results[-1]
                self.log(f"round {r}: test accuracy {row['accuracy']:.4f}, macro F1 {row['macro_f1']:.4f}")
                state.stage = "select" if r < self.cfg.rounds else "done"
            else:
                state.results[-1] |= self.select_and_label(r)
                state.round, state.stage = r + 1, "train"
                self.nets = None
            self._save_state(state)
        return state.results
