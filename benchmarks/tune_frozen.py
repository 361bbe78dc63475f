"""Choose the frozen heads' training settings on the *validation* split (never the test split).

    .venv/bin/python benchmarks/tune_frozen.py --data ../shared/data/lc25000-lung \
        --groups ../shared/data/lc25000-lung/groups.csv

For each setting of a small grid, trains the frozen learner (co-training, UniSAL loss) on the
seeded random initial set of ``--labels`` images, and in supervised mode on every pool label,
for ``--seeds`` seeds, and prints the validation accuracy (mean over seeds) and the training
time as one JSON line per setting. ``--full-epochs 10 30`` instead compares how long the
full-supervision reference trains (epochs of one pass over the pool labels). The feature cache
must exist (``unisal features``).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import time

import numpy as np
import torch

from unisal.config import apply_overrides, build_config
from unisal.data.prepare import prepare_data
from unisal.learners import create_learner
from unisal.seeds import fit_seeds, round_seed
from unisal.train.fit import TrainingSets

GRID = {
    "train.lr": [1e-3, 3e-3],
    "train.steps_per_epoch": [20, 30],
    "train.ulb_ratio": [1.0, 3.0],
    "model.drop_rate": [0.0, 0.2],
}


def nested(flat: dict[str, object]) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for key, value in flat.items():
        section, leaf = key.split(".")
        out.setdefault(section, {})[leaf] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--groups")
    parser.add_argument("--labels", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--full-epochs", type=int, nargs="*", help="compare full-supervision lengths instead")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    base = build_config("cpu", {"data": {"path": args.data, "groups": args.groups, "val_size": None}})  # 10 %
    device = torch.device("cpu")
    data = {seed: prepare_data(base.data, seed) for seed in range(args.seeds)}
    labels = data[0].catalogue.labels
    learner = create_learner(base, len(data[0].catalogue.class_names), device)
    learner.prepare(data[0])  # one feature cache serves every seed's split

    if args.full_epochs:
        for epochs in args.full_epochs:
            cfg = copy.deepcopy(base)
            steps = int(np.ceil(len(data[0].idx_train) / cfg.train.batch_size))
            apply_overrides(
                cfg,
                {"learner": {"mode": "supervised"}, "train": {"epochs": epochs, "steps_per_epoch": steps}},
            )
            learner.cfg = cfg
            accuracies = []
            for seed, split in data.items():
                pool = split.idx_train
                sets = TrainingSets(pool, labels[pool], idx_val=split.idx_val, y_val=labels[split.idx_val])
                result = learner.fit(sets, **fit_seeds(seed, 0))
                accuracies.append(result.best_val_accuracy)
            row = {
                "full_supervision_epochs": epochs,
                "steps_per_epoch": steps,
                "val_accuracy": round(float(np.mean(accuracies)), 4),
            }
            print(
                json.dumps(row | {"val_accuracy_per_seed": [round(float(a), 4) for a in accuracies]}),
                flush=True,
            )
        return

    for values in itertools.product(*GRID.values()):
        setting = dict(zip(GRID, values, strict=True))
        row: dict[str, object] = {"setting": setting}
        for mode in ("cotrain", "supervised"):
            cfg = copy.deepcopy(base)
            apply_overrides(cfg, nested(setting) | {"learner": {"mode": mode}})
            learner.cfg = cfg
            accuracies, seconds = [], []
            for seed, split in data.items():
                pool = split.idx_train
                rng = np.random.default_rng(round_seed(seed, 0, "initial"))
                idx_lb = (
                    np.sort(rng.choice(pool, size=args.labels, replace=False)) if mode == "cotrain" else pool
                )
                start = time.perf_counter()
                sets = TrainingSets(
                    idx_lb, labels[idx_lb], np.setdiff1d(pool, idx_lb), split.idx_val, labels[split.idx_val]
                )
                result = learner.fit(sets, **fit_seeds(seed, 0))
                seconds.append(time.perf_counter() - start)
                accuracies.append(result.best_val_accuracy)
            row[mode] = {
                "val_accuracy": round(float(np.mean(accuracies)), 4),
                "val_accuracy_per_seed": [round(float(a), 4) for a in accuracies],
                "seconds": round(float(np.mean(seconds)), 1),
            }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
