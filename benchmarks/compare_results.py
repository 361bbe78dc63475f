"""How far two benchmark results.csv files of the same command differ, per arm (e.g. the same
command on two machines): accuracy and macro-F1 by (arm, seed, round), and whether the queries
were the same (n_candidates, a proxy where the query files are not kept).

    .venv/bin/python benchmarks/compare_results.py A/results.csv B/results.csv [--seeds 0]

Prints one JSON object: for each arm present in both, the rows compared, the largest and the
mean absolute difference of accuracy and macro-F1, and how many rows are identical.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def rows(path: Path, seeds: set[str] | None) -> dict[tuple[str, str, str], dict[str, str]]:
    with path.open(newline="") as handle:
        return {
            (r["arm"], r["seed"], r["round"]): r
            for r in csv.DictReader(handle)
            if r["round"] != "" and (seeds is None or r["seed"] in seeds)
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--seeds", help="comma-separated seeds to compare (default: all in both)")
    args = parser.parse_args()
    seeds = set(args.seeds.split(",")) if args.seeds else None
    a, b = rows(args.a, seeds), rows(args.b, seeds)
    out: dict[str, dict[str, float | int]] = {}
    for key in sorted(set(a) & set(b)):
        arm = out.setdefault(key[0], {"rows": 0, "identical_rows": 0, "same_n_candidates": 0})
        ra, rb = a[key], b[key]
        arm["rows"] += 1
        for metric in ("accuracy", "macro_f1"):
            d = abs(float(ra[metric]) - float(rb[metric]))
            arm[f"max_abs_diff_{metric}"] = max(arm.get(f"max_abs_diff_{metric}", 0.0), d)
            arm[f"sum_{metric}"] = arm.get(f"sum_{metric}", 0.0) + d
        arm["identical_rows"] += ra["accuracy"] == rb["accuracy"] and ra["macro_f1"] == rb["macro_f1"]
        arm["same_n_candidates"] += ra.get("n_candidates", "") == rb.get("n_candidates", "")
    for arm in out.values():
        for metric in ("accuracy", "macro_f1"):
            arm[f"mean_abs_diff_{metric}"] = round(arm.pop(f"sum_{metric}") / arm["rows"], 4)
            arm[f"max_abs_diff_{metric}"] = round(arm[f"max_abs_diff_{metric}"], 4)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
