"""Class shares of the labels each arm of a benchmark chose, and its trainings that collapsed.

    python benchmarks/label_balance.py BENCHMARK_DIR [--collapse 0.85]

Reads the run folders (``runs/<arm>/seed<k>/state.json`` and ``splits.csv``): for each arm,
the mean (and minimum over seeds) share of each class among its labels after the last round;
then every training whose test accuracy fell below ``--collapse``, with the class counts of its
labelled set at that round.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter
from pathlib import Path


def labelled_counts(run: Path, up_to_round: int | None = None) -> Counter[str]:
    state = json.loads((run / "state.json").read_text())
    with (run / "splits.csv").open(newline="") as handle:
        labels = [row["label"] for row in csv.DictReader(handle)]
    rounds = state["labelled_round"]
    return Counter(
        labels[i] for i, r in enumerate(rounds) if r >= 0 and (up_to_round is None or r <= up_to_round)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--collapse", type=float, default=0.85)
    args = parser.parse_args()
    runs = sorted(args.folder.glob("runs/*/seed*"))
    classes = sorted({c for run in runs for c in labelled_counts(run)})
    print("| arm | " + " | ".join(f"{c} share (min)" for c in classes) + " |")
    print("|---" * (len(classes) + 1) + "|")
    for arm in sorted({run.parent.name for run in runs}):
        shares = []
        for run in sorted(args.folder.glob(f"runs/{arm}/seed*")):
            counts = labelled_counts(run)
            shares.append({c: counts[c] / sum(counts.values()) for c in classes})
        cells = [
            f"{sum(s[c] for s in shares) / len(shares):.3f} ({min(s[c] for s in shares):.3f})"
            for c in classes
        ]
        print(f"| {arm} | " + " | ".join(cells) + " |")
    print(f"\ntrainings with test accuracy below {args.collapse}:")
    for run in runs:
        for result in json.loads((run / "state.json").read_text())["results"]:
            if result["accuracy"] < args.collapse:
                counts = labelled_counts(run, result["round"])
                print(
                    f"- {run.parent.name} {run.name} round {result['round']} ({result['n_labeled']} labels): "
                    f"accuracy {result['accuracy']:.3f}; labels per class {dict(sorted(counts.items()))}"
                )


if __name__ == "__main__":
    main()
