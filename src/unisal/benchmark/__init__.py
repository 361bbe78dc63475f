"""Multi-seed comparison of query strategies and learners on one labelled data set."""

from unisal.benchmark.report import read_results, write_report
from unisal.benchmark.runner import Benchmark, BenchmarkPlan
from unisal.benchmark.spec import Arm, LearnerSpec, parse_arms, parse_seeds

__all__ = [
    "Arm",
    "Benchmark",
    "BenchmarkPlan",
    "LearnerSpec",
    "parse_arms",
    "parse_seeds",
    "read_results",
    "write_report",
]
