"""Rewrite a benchmark's results.csv from its run folders with today's columns (no training).

A benchmark written before a column was added (e.g. the guard's, issue 15) keeps that column in
each run's rounds.csv but not in results.csv; this collects the rows again with the settings the
benchmark recorded in its benchmark.yaml, then rebuilds summary.md and the curves.

Usage: python benchmarks/rewrite_results.py BENCHMARK_FOLDER
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from unisal.benchmark import Benchmark, BenchmarkPlan, LearnerSpec, parse_arms
from unisal.benchmark.report import write_report
from unisal.config import from_dict


def main(folder: Path) -> None:
    saved = yaml.safe_load((folder / "benchmark.yaml").read_text())
    base = from_dict(saved["base"])
    default = LearnerSpec(base.learner.name, base.learner.mode)
    plan = BenchmarkPlan(
        base=base,
        arms=parse_arms(",".join(saved["arms"]), [default]),
        seeds=saved["seeds"],
        out=folder,
        default_learner=default,
        reference=saved.get("reference", True),
        reference_passes=saved.get("reference_passes", 30),
    )
    Benchmark(plan).write_results()
    print(write_report(folder))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
