"""Test accuracy at equal total labels (n_labeled + n_val) for benchmarks/validation_choice.sh.

python benchmarks/summarise_validation.py OUT  (prints a Markdown summary)
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

UNCOUNTED = "val1500"  # the old default: its validation labels are not counted in the total


def read(out: Path) -> dict[str, dict[int, dict[int, float]]]:
    """setting -> seed -> total labels -> test accuracy."""
    table: dict[str, dict[int, dict[int, float]]] = {}
    for rounds in sorted(out.glob("*/seed*/rounds.csv")):
        setting, seed = rounds.parent.parent.name, int(rounds.parent.name.removeprefix("seed"))
        with rounds.open(newline="") as handle:
            for row in csv.DictReader(handle):
                total = int(row["n_labeled"]) + (int(row["n_val"]) if setting != UNCOUNTED else 0)
                table.setdefault(setting, {}).setdefault(seed, {})[total] = float(row["accuracy"])
    return table


def cell(values: list[float]) -> str:
    if not values:
        return ""
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def main() -> None:
    table = read(Path(sys.argv[1]))
    totals = sorted({t for by_seed in table.values() for curve in by_seed.values() for t in curve})
    print("Test accuracy, mean ± std over seeds, at equal total labels (columns):\n")
    print("| setting | " + " | ".join(str(t) for t in totals) + " | mean over totals |")
    print("|---" * (len(totals) + 2) + "|")
    for setting, by_seed in sorted(table.items()):
        cells = [cell([curve[t] for curve in by_seed.values() if t in curve]) for t in totals]
        means = [np.mean([curve[t] for t in totals]) for curve in by_seed.values()]
        print(f"| {setting} | " + " | ".join(cells) + f" | {cell(means)} |")
    print(
        f"\nTotal labels = AL labels + validation labels ({UNCOUNTED}'s 1,500 validation labels are not "
        "counted: it is the old default, shown as a reference)."
    )
    if "none" in table:
        print("\nPaired by seed, the mean over totals of none minus each other setting:\n")
        for setting in sorted(set(table) - {"none"}):
            seeds = sorted(set(table["none"]) & set(table[setting]))
            gaps = [np.mean([table["none"][s][t] - table[setting][s][t] for t in totals]) for s in seeds]
            wins = sum(table["none"][s][t] > table[setting][s][t] for s in seeds for t in totals)
            print(
                f"- none - {setting}: {cell(gaps)} over {len(seeds)} seeds "
                f"(none higher in {wins} of {len(seeds) * len(totals)} seed x total pairs)"
            )


if __name__ == "__main__":
    main()
