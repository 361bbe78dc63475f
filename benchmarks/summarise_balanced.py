"""Uniform vs class-balanced labelled batches, from benchmarks/balanced_sampling.sh.

python benchmarks/summarise_balanced.py OUT [--collapse 0.85]  (prints a Markdown summary)

Per arm and sampling: AUBC of test accuracy (mean ± std over seeds), accuracy at a few budgets,
and the trainings whose test accuracy fell below ``--collapse``; then the paired (by seed)
difference balanced - uniform.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from unisal.benchmark.report import Results, aubc, read_results

SAMPLINGS = ("uniform", "balanced")


def cell(values: list[float], digits: int = 3) -> str:
    if len(values) < 2:
        return f"{values[0]:.{digits}f}" if values else ""
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def accuracy_at(results: Results, arm: str, n: int) -> list[float]:
    out = []
    for curve in results.curves[arm].values():
        hit = np.flatnonzero(curve.n_labeled == n)
        if len(hit):
            out.append(float(curve.values["accuracy"][hit[0]]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--collapse", type=float, default=0.85)
    args = parser.parse_args()
    results = {how: read_results(args.folder / how / "results.csv") for how in SAMPLINGS}
    arms = sorted(results["uniform"].curves)
    budgets = [20, 50, 110]
    print("| arm | sampling | AUBC | " + " | ".join(f"acc @ {n}" for n in budgets) + " | trainings < "
          f"{args.collapse} |")  # fmt: skip
    print("|---" * (4 + len(budgets)) + "|")
    for arm in arms:
        for how in SAMPLINGS:
            curves = results[how].curves[arm]
            aubcs = [aubc(c.n_labeled, c.values["accuracy"]) for c in curves.values()]
            low = sum(int((c.values["accuracy"] < args.collapse).sum()) for c in curves.values())
            total = sum(len(c.n_labeled) for c in curves.values())
            accs = [cell(accuracy_at(results[how], arm, n)) for n in budgets]
            print(f"| {arm} | {how} | {cell(aubcs, 4)} | " + " | ".join(accs) + f" | {low} of {total} |")
    print("\nPaired by seed, balanced - uniform:\n")
    for arm in arms:
        u, b = results["uniform"].curves[arm], results["balanced"].curves[arm]
        seeds = sorted(set(u) & set(b))
        gaps = [aubc(b[s].n_labeled, b[s].values["accuracy"]) - aubc(u[s].n_labeled, u[s].values["accuracy"])
                for s in seeds]  # fmt: skip
        print(f"- {arm}: AUBC {cell(gaps, 4)} over {len(seeds)} seeds (balanced higher in "
              f"{sum(g > 0 for g in gaps)} of {len(seeds)})")  # fmt: skip


if __name__ == "__main__":
    main()
