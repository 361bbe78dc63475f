"""Supervised reference models trained on the same split as an AL run.

Two references put an AL curve in context: the same labelled set without the unlabelled
images (what does semi-supervision add?), and every training-pool label (the ceiling). Either
uses the run's learner in ``supervised`` mode; by default with two networks whose logits are
averaged, as the co-trained pair's are, so that the comparison is fair (``networks=1`` trains
one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unisal.config import RunConfig, from_dict, to_dict
from unisal.data.prepare import UNREADABLE, PreparedData, prepare_data
from unisal.device import resolve_device
from unisal.errors import RunError
from unisal.events import message
from unisal.io import check_creatable, write_json_atomic
from unisal.learners import create_learner
from unisal.pipeline import fit_round, pixels_needed
from unisal.run_folder import RunFolder
from unisal.settings import override_config
from unisal.state import ALState
from unisal.threads import configure_threads, resumed_threads
from unisal.train.fit import FitResult


def _load_run(run_dir: Path, overrides: dict[str, Any]) -> tuple[RunConfig, ALState, Any]:
    """The run's settings with ``overrides`` applied, its state, and the threads it recorded."""
    folder = RunFolder(run_dir)
    for name in ("config.yaml", "state.json", "splits.csv"):
        if not (run_dir / name).is_file():
            raise RunError(f"{run_dir} is not a unisal run folder ({name} missing)")
    saved = folder.read_config()
    cfg = from_dict(saved)
    cfg.learner.mode = "supervised"
    override_config(cfg, overrides)
    return cfg, folder.read_state(), saved.get("threads")


REFERENCE_FILES = {"metrics.json"}


def check_reference_folder(out: Path) -> None:
    """Before any training: ``out`` can be created, and holds nothing but an earlier reference
    (a folder of someone else's is never written into).

    Raises:
        RunError: it cannot be created, or holds other files.
    """
    check_creatable(out)
    if not out.is_dir():
        return
    foreign = sorted(p.name for p in out.iterdir() if p.name not in REFERENCE_FILES)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise RunError(
            f"--out {out} holds files that are not a supervised reference ({shown}); choose another folder"
        )
    try:
        ours = "n_labeled" in json.loads((out / "metrics.json").read_text())
    except FileNotFoundError:
        return
    except (OSError, ValueError, TypeError):
        ours = False
    if not ours:
        raise RunError(
            f"--out {out}: its metrics.json is not a supervised reference's; choose another folder"
        )


def supervised_reference(
    cfg: RunConfig, data: PreparedData, idx_lb: np.ndarray, *, round_: int, device: torch.device
) -> tuple[dict[str, float], np.ndarray, FitResult]:
    """A learner of ``cfg`` (its mode ``supervised``) trained on the labelled images ``idx_lb``
    (L,) as round ``round_`` of the run would be (``unisal.pipeline.fit_round``), then scored on
    the test split: its metrics, confusion matrix (C, C) and fit result. The training split's
    other images are unused in supervised mode; they bound the batch."""
    learner = create_learner(cfg, len(data.catalogue.class_names), device)
    learner.prepare(data)
    idx_lb = idx_lb[np.isin(idx_lb, data.idx_train)]  # less any found unreadable while streaming
    unlabelled = np.setdiff1d(data.idx_train, idx_lb)
    result = fit_round(learner, data, idx_lb, unlabelled, seed=cfg.seed, round_=round_)
    labels = data.catalogue.labels
    metrics, matrix = learner.evaluate(data.idx_test, labels[data.idx_test])
    return metrics, matrix, result


def train_supervised_reference(
    run_dir: str | Path,
    labels: str,
    round_: int | None,
    out: str | Path,
    overrides: dict[str, Any],
) -> dict[str, Any]:
    """Train with cross-entropy only and write ``out/metrics.json``.

    Args:
        run_dir: folder of a ``unisal simulate`` run.
        labels: ``run`` (the run's labelled set at ``round_``) or ``all`` (every pool label).
        round_: round of the run whose labelled set is used; default its last trained round.
        out: output folder.
        overrides: nested config values (learner, model, train, seed, device) to change.
    """
    run_dir, out = Path(run_dir), Path(out)
    check_reference_folder(out)
    cfg, state, recorded = _load_run(run_dir, overrides)
    device = resolve_device(cfg.device)
    cfg.threads = configure_threads(resumed_threads(overrides.get("threads"), recorded))
    data = prepare_data(cfg.data, cfg.seed, pixels_needed=pixels_needed(cfg))
    saved_split = RunFolder(run_dir).read_split()
    # items the run found unreadable while streaming are left out again once the features are read
    if len(saved_split) != len(data.split) or np.any(
        (saved_split != data.split) & (saved_split != UNREADABLE)
    ):
        raise RunError(f"the data or split differs from the one recorded in {run_dir}/splits.csv")
    last_round = max((r["round"] for r in state.results), default=0)
    round_ = last_round if round_ is None else round_
    cat = data.catalogue
    if labels == "all":
        idx_lb = data.idx_train
    else:
        idx_lb = state.labelled(up_to_round=round_)
        if round_ > state.round or len(idx_lb) == 0:
            raise RunError(f"round {round_} of {run_dir} has no labelled set yet")
    message(
        f"supervised reference: {len(idx_lb)} labelled images ({labels}), {cfg.learner.name} learner, "
        f"{cfg.learner.networks} network(s), {cfg.model.backbone}"
    )
    metrics, matrix, result = supervised_reference(cfg, data, idx_lb, round_=round_, device=device)
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "run": str(run_dir),
        "labels": labels,
        "round": round_,
        "n_labeled": int(np.isin(idx_lb, data.idx_train).sum()),  # what was trained on
        "learner": cfg.learner.name,
        "networks": cfg.learner.networks,
        **metrics,
        "train_seconds": round(result.seconds, 2),
        "steps": result.steps,
        "best_epoch": result.best_epoch,
        "val_accuracy": result.best_val_accuracy,
        "confusion": matrix.tolist(),
        "class_names": cat.class_names,
        "config": to_dict(cfg),
    }
    write_json_atomic(out / "metrics.json", summary, indent=2)
    return summary
