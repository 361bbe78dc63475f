"""What happened in the collapsed trainings of a benchmark (issue 15, item 1), from its run folders.

A training collapsed when its test accuracy is more than 0.10 below the reference arm's at the same
seed and number of labels (random by default; ``--reference`` picks another arm). For every
collapsed training and, for contrast, every healthy training of the same arms, it reads what the
run wrote that round: the labelled set's classes (``history/round_<k>.csv``: ``lb_<c>``, the shares
in the labelled batches), each network's confident pseudo-labels per class and its mask rate in
the last epoch (``pl_a_<c>``, ``pl_b_<c>``, ``mask_a``, ``mask_b``), and the pool predictions per
network and the labelled-set recall (``diagnostics/round_<k>.json``). It prints a markdown table.

Usage: python benchmarks/collapse_report.py BENCHMARK_FOLDER [--reference ARM] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

GAP = 0.10


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def round_facts(run: Path, round_: int, class_names: list[str]) -> dict[str, object]:
    """One training's collapse signals: the class the networks predict least on the pool, and
    its share of the labelled batches and of the confident pseudo-labels."""
    history = read_csv(run / "history" / f"round_{round_}.csv")
    last = history[-1]
    first = history[0]
    diag = json.loads((run / "diagnostics" / f"round_{round_}.json").read_text())
    lb = np.array([float(first.get(f"lb_{c}", "nan")) for c in range(len(class_names))])
    shares = np.mean([[net["pool_shares"][c] for c in class_names] for net in diag["networks"]], axis=0)
    rare = int(np.argmin(shares))  # the class the model predicts least on the pool
    pl = [float(last.get(f"pl_{net}_{rare}", "nan")) for net in ("a", "b")]
    masks = [float(last.get(f"mask_{net}", "nan")) for net in ("a", "b")]
    pool = [net["pool_shares"][class_names[rare]] for net in diag["networks"]]
    recall = [net["labelled_recall"][class_names[rare]] for net in diag["networks"]]
    return {
        "rare": class_names[rare],
        "rare_labelled_share": float(lb[rare]),
        "rare_pseudo_share_last_epoch": float(np.mean(pl)),
        "mask_rate_last_epoch": float(np.mean(masks)),
        "rare_pool_share": float(np.mean(pool)),
        "rare_labelled_recall": float(np.mean([r for r in recall if r is not None])) if any(r is not None for r in recall) else float("nan"),
        "heads_agree": float(diag["heads_agree"]),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--reference", default="random")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = read_csv(args.folder / "results.csv")
    acc: dict[tuple[str, int, int], float] = {}
    where: dict[tuple[str, int, int], tuple[str, int]] = {}
    for row in results:
        if row["arm"] == "full supervision":
            continue
        key = (row["arm"], int(row["seed"]), int(row["n_labeled"]))
        acc[key] = float(row["accuracy"])
        learner = row["learner"].replace(":", "-")
        where[key] = (f"{row['strategy']}@{learner}" + _recipes(row["arm"]), int(row["round"]))
    groups: dict[str, list[dict[str, object]]] = defaultdict(list)
    for (arm, seed, n), value in sorted(acc.items()):
        base = acc.get((args.reference, seed, n))
        if base is None or arm == args.reference:
            continue
        folder_name, round_ = where[(arm, seed, n)]
        run = args.folder / "runs" / folder_name / f"seed{seed}"
        if not (run / "diagnostics" / f"round_{round_}.json").is_file():
            continue
        class_names = list(
            json.loads((run / "diagnostics" / f"round_{round_}.json").read_text())["networks"][0][
                "pool_shares"
            ]
        )
        facts = round_facts(run, round_, class_names) | {
            "arm": arm,
            "seed": seed,
            "labels": n,
            "accuracy": value,
            "reference": base,
        }
        groups["collapsed" if value < base - GAP else "healthy"].append(facts)
    lines = [
        f"# Collapsed trainings of {args.folder.name} (accuracy more than {GAP:.2f} below {args.reference}'s)",
        "",
        "| trainings | n | least-predicted class: share of the labelled batches | its share of the confident pseudo-labels, last epoch | CPS mask rate, last epoch | its share of the pool predictions | its recall on the labelled set | heads agree |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for name in ("collapsed", "healthy"):
        rows = groups.get(name, [])
        if not rows:
            continue
        cells = [
            f"{np.nanmean([float(r[k]) for r in rows]):.3f}"  # type: ignore[arg-type]
            for k in ("rare_labelled_share", "rare_pseudo_share_last_epoch", "mask_rate_last_epoch", "rare_pool_share", "rare_labelled_recall", "heads_agree")
        ]  # fmt: skip
        lines.append(f"| {name} | {len(rows)} | " + " | ".join(cells) + " |")
    lines += ["", "| arm | seed | labels | accuracy | reference | least-predicted class | labelled share | pseudo share | pool share | labelled recall |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in groups.get("collapsed", []):
        lines.append(
            f"| {r['arm']} | {r['seed']} | {r['labels']} | {r['accuracy']:.3f} | {r['reference']:.3f} | {r['rare']} | "
            f"{r['rare_labelled_share']:.3f} | {r['rare_pseudo_share_last_epoch']:.3f} | {r['rare_pool_share']:.3f} | {r['rare_labelled_recall']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)


def _recipes(arm: str) -> str:
    """``unisal+balanced+debias (frozen:supervised)`` -> ``+balanced+debias``."""
    head = arm.split(" (")[0]
    parts = head.split("+")[1:]
    return "".join(f"+{p}" for p in parts)


if __name__ == "__main__":
    main()
