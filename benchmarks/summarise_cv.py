"""Cross-validated accuracy against test accuracy, per round (the rounds_*.csv of cv_estimate.sh).

Usage: python benchmarks/summarise_cv.py FOLDER > FOLDER/summary.md
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np


def main(folder: Path) -> None:
    print("# The accuracy a lab is told (5-fold cross-validation over its labels) vs test accuracy\n")
    print("Command: `bash benchmarks/cv_estimate.sh`; each row one round of UniSAL (cpu preset).\n")
    print("| run | round | labels | test accuracy | cross-validated | 95 % interval | test inside |")
    print("|---|---|---|---|---|---|---|")
    gaps, inside = [], []
    for path in sorted(folder.glob("rounds_*.csv")):
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if not row.get("cv_accuracy"):
                    continue
                test, cv = float(row["accuracy"]), float(row["cv_accuracy"])
                low, high = float(row["cv_low"]), float(row["cv_high"])
                gaps.append(cv - test)
                inside.append(low <= test <= high)
                print(
                    f"| {path.stem[7:]} | {row['round']} | {row['n_labeled']} | {test:.3f} | {cv:.3f} | "
                    f"{low:.3f}-{high:.3f} | {'yes' if inside[-1] else 'no'} |"
                )
    g = np.array(gaps)
    print(
        f"\nOver {len(g)} rounds: cross-validated minus test accuracy {g.mean():+.3f} ± {g.std(ddof=1):.3f} "
        f"(mean ± std; min {g.min():+.3f}, max {g.max():+.3f}); the test accuracy lies inside the interval in "
        f"{sum(inside)} of {len(inside)} rounds."
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
