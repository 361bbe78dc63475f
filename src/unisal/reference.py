"""Supervised reference models trained on the same split as an AL run.

Two references put an AL curve in context: the same labelled set without the unlabelled
images (what does semi-supervision add?), and every training-pool label (the ceiling).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from unisal.config import RunConfig, apply_overrides, from_dict, to_dict
from unisal.loop import (
    NOT_LABELLED,
    ALState,
    RunError,
    prepare_data,
    resolve_device,
    round_seed,
    write_atomic,
)
from unisal.models.network import build_network
from unisal.train.evaluate import evaluate
from unisal.train.fit import fit


def _load_run(run_dir: Path, overrides: dict[str, Any]) -> tuple[RunConfig, ALState]:
    for name in ("config.yaml", "state.json", "splits.csv"):
        if not (run_dir / name).is_file():
            raise RunError(f"{run_dir} is not a unisal run folder ({name} missing)")
    cfg = from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    apply_overrides(cfg, overrides)
    return cfg, ALState.from_state_dict(json.loads((run_dir / "state.json").read_text()))


def train_supervised_reference(
    run_dir: str | Path,
    labels: str,
    round_: int | None,
    out: str | Path,
    overrides: dict[str, Any],
    progress: bool = True,
    log: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Train one network with cross-entropy and write ``out/metrics.json``.

    Args:
        run_dir: folder of a ``unisal simulate`` run.
        labels: ``run`` (the run's labelled set at ``round_``) or ``all`` (every pool label).
        round_: round of the run whose labelled set is used; default its last trained round.
        out: output folder.
        overrides: nested config values (model, train, seed, device) to change.
    """
    run_dir, out = Path(run_dir), Path(out)
    cfg, state = _load_run(run_dir, overrides)
    data = prepare_data(cfg, progress)
    with (run_dir / "splits.csv").open(newline="") as handle:
        saved_split = np.asarray([row["split"] for row in csv.DictReader(handle)])
    if len(saved_split) != len(data.split) or np.any(saved_split != data.split):
        raise RunError(f"the data or split differs from the one recorded in {run_dir}/splits.csv")
    last_round = max((r["round"] for r in state.results), default=0)
    round_ = last_round if round_ is None else round_
    cat = data.catalogue
    pool = data.indices("train")
    if labels == "all":
        idx_lb = pool
    else:
        done = (state.labelled_round != NOT_LABELLED) & (state.labelled_round <= round_)
        idx_lb = np.flatnonzero(done)
        if round_ > state.round or len(idx_lb) == 0:
            raise RunError(f"round {round_} of {run_dir} has no labelled set yet")
    idx_val, idx_test = data.indices("val"), data.indices("test")
    device = resolve_device(cfg.device)
    net = build_network(cfg.model, len(cat.class_names), round_seed(cfg.seed, round_, "init"))
    torch.manual_seed(round_seed(cfg.seed, round_, "train"))
    log(f"supervised reference: {len(idx_lb)} labelled images ({labels}), {cfg.model.backbone}")
    result = fit(
        [net],
        data.store,
        idx_lb,
        cat.labels[idx_lb],
        None,
        idx_val,
        cat.labels[idx_val],
        cfg.train,
        device,
        seed=round_seed(cfg.seed, round_, "train"),
        progress=progress,
    )
    metrics, matrix = evaluate(
        [net], data.store, idx_test, cat.labels[idx_test], device, cfg.train.eval_batch_size, progress
    )
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "run": str(run_dir),
        "labels": labels,
        "round": round_,
        "n_labeled": int(len(idx_lb)),
        **metrics,
        "train_seconds": round(result.seconds, 2),
        "steps": result.steps,
        "best_epoch": result.best_epoch,
        "val_accuracy": result.best_val_accuracy,
        "confusion": matrix.tolist(),
        "class_names": cat.class_names,
        "config": to_dict(cfg),
    }
    write_atomic(out / "metrics.json", json.dumps(summary, indent=2))
    return summary
