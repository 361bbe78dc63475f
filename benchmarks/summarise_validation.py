"""Test accuracy at equal total labels (n_labeled + n_val) for benchmarks/validation_choice.sh.

python benchmarks/summarise_validation.py OUT
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    out = Path(sys.argv[1])
    table: dict[str, dict[int, list[float]]] = {}
    for rounds in sorted(out.glob("*/seed*/rounds.csv")):
        setting = rounds.parent.parent.name
        with rounds.open(newline="") as handle:
            for row in csv.DictReader(handle):
                total = int(row["n_labeled"]) + (int(row["n_val"]) if setting != "val1500" else 0)
                table.setdefault(setting, {}).setdefault(total, []).append(float(row["accuracy"]))
    totals = sorted({t for by_total in table.values() for t in by_total})
    print("| setting | " + " | ".join(str(t) for t in totals) + " |")
    print("|---" * (len(totals) + 1) + "|")
    for setting, by_total in sorted(table.items()):
        cells = []
        for t in totals:
            v = by_total.get(t, [])
            cells.append(
                f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}" if len(v) > 1 else (f"{v[0]:.3f}" if v else "")
            )
        print(f"| {setting} | " + " | ".join(cells) + " |")
    print(
        "\nTotal labels = AL labels + validation labels (val1500's 1,500 validation labels are not counted)."
    )


if __name__ == "__main__":
    main()
