"""Named starting points of a configuration (``--preset``) and the setting bundles (recipes)
that a benchmark arm adds on top of its base."""

from __future__ import annotations

import difflib
from typing import Any

from unisal.errors import ConfigError

# The fine-tuning settings of the defaults above: EfficientNet-Lite0 at 64 px, 200 steps a round.
_CPU_FINETUNE: dict[str, Any] = {"learner": {"name": "finetune"}}

# Heads on cached EfficientNet-Lite0 features of the 8 flips/rotations at 112 px: seconds a round
# on a CPU (see docs/results-frozen-lc25000-lung.md for the measurements behind the choice).
# Training robust to few and imbalanced labels (issue 15, docs/robust-default.md): class-balanced
# labelled batches, debiased pseudo-labels, co-training warm-started from supervised heads, the
# guard that falls back to those heads when the co-trained ones look degenerate; and a tenth of
# UniSAL's budget spent exploring, which finds a class the labels lack.
ROBUST_TRAINING: dict[str, Any] = {
    "learner": {"guard": "fallback"},
    "train": {"labelled_sampling": "balanced", "pseudo_labels": "debias", "warm_start": True},
    "query": {"explore": 0.1},
}
_CPU_FROZEN: dict[str, Any] = {
    "data": {"image_size": 112},
    "learner": {"name": "frozen", **ROBUST_TRAINING["learner"]},
    "model": {"head_hidden": 256, "drop_rate": 0.2},
    "features": {"views": "d8", "predict_views": "mean"},
    "query": ROBUST_TRAINING["query"],
    "train": {
        "optimizer": "adamw",
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "epochs": 10,
        "steps_per_epoch": 20,
        "batch_size": 128,
        "ulb_ratio": 3.0,
        "eval_every": 1,
        "eval_batch_size": 1024,
        **ROBUST_TRAINING["train"],
    },
}

PRESETS: dict[str, dict[str, Any]] = {
    "cpu": _CPU_FROZEN,
    "cpu-finetune": _CPU_FINETUNE,
    # Reference settings (Zhong et al. 2025 and their code) for GPU users.
    "paper": {
        "learner": {"name": "finetune"},
        # The reference selects the best epoch on a validation split of 10 % of all labelled
        # images, not counted in the budget (reported as n_val in rounds.csv).
        "data": {"image_size": 224, "val_size": None},
        "model": {"backbone": "resnet50", "pretrained": True},
        # Batch 128 (64 labelled); pseudo supervision on from epoch 15 of 200 in the reference.
        "train": {
            "epochs": 200,
            "steps_per_epoch": None,
            "batch_size": 128,
            "eval_every": 1,
            "warmup_fraction": 0.075,
        },
        "query": {"budget": 180},
        "initial": 180,
        # The reference trains 10 times (180 ... 1,800 labels): 9 query rounds after round 0.
        "rounds": 9,
    },
    # A pathology foundation model (gated on the Hugging Face hub: see the README) as a frozen
    # encoder on a GPU; the heads train as on the CPU.
    "gpu-frozen": {
        **_CPU_FROZEN,
        "data": {"image_size": 224},
        "model": {**_CPU_FROZEN["model"], "backbone": "uni", "pretrained": True},
        "features": {"views": "d8", "predict_views": "mean", "batch_size": 256},
        "query": {"budget": 180, **ROBUST_TRAINING["query"]},
        "initial": 180,
        "rounds": 9,
    },
}


# Named setting bundles a benchmark arm can add on top of its base (``unisal@frozen+v1``, and
# several in order: ``unisal+balanced+debias``): the training candidates of issue 15; ``v1``,
# UniSAL's training as it was before them (the cpu preset until issue 15), pinned; ``v2``, the
# robust training the cpu preset has since, pinned.
RECIPES: dict[str, dict[str, Any]] = {
    "v2": ROBUST_TRAINING,
    "v1": {
        "query": {"explore": 0.0},
        "learner": {"guard": "off"},
        "train": {
            "labelled_sampling": "uniform",
            "pseudo_labels": "plain",
            "thresholds": "fixed",
            "ema_teacher": 0.0,
            "cps_labels_per_class": None,
            "warm_start": False,
        },
    },
    "balanced": {"train": {"labelled_sampling": "balanced"}},
    "explore10": {"query": {"explore": 0.1}},
    "explore25": {"query": {"explore": 0.25}},
    "align": {"train": {"pseudo_labels": "align"}},
    "debias": {"train": {"pseudo_labels": "debias"}},
    "freematch": {"train": {"thresholds": "freematch"}},
    "ema": {"train": {"ema_teacher": 0.99}},
    "grow": {"train": {"cps_labels_per_class": 30}},
    "warm": {"train": {"warm_start": True}},
    "guard": {"learner": {"guard": "fallback"}},
}


def recipe_values(name: str) -> dict[str, Any]:
    """The settings of recipe ``name``; ConfigError naming the known ones otherwise."""
    if name not in RECIPES:
        close = difflib.get_close_matches(name, list(RECIPES), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown recipe '{name}'{hint}; expected one of {sorted(RECIPES)}")
    return RECIPES[name]
