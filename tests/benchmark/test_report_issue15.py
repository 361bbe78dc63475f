"""summary.md's issue-15 parts: the default arm, paired AUBC comparisons, collapses, the stop table,
and balanced accuracy as a main metric (hand-made results.csv files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.benchmark.test_report import _write
from unisal.benchmark.report import (
    collapses,
    read_results,
    stop_table,
    summary_markdown,
    versus_table,
    write_report,
)
from unisal.benchmark.spec import FULL


def rows() -> list[dict[str, object]]:
    """Seeds 0-2, labels 10/20/30: 'unisal' is 0.02 above 'random' in every round except seed 1's
    last, where it collapses to 0.5; 'margin' equals random. The stop criterion holds for unisal
    from round 1 in seeds 0 and 2, never in seed 1."""
    out: list[dict[str, object]] = []
    for seed in range(3):
        for r, n in enumerate((10, 20, 30)):
            rand = 0.80 + 0.05 * r
            uni = 0.5 if (seed, r) == (1, 2) else rand + 0.02
            for arm, acc, stop in (
                ("random", rand, 0),
                ("margin", rand, 0),
                ("unisal", uni, int(r >= 1 and seed != 1)),
            ):
                out.append(
                    {"arm": arm, "seed": seed, "round": r, "n_labeled": n, "accuracy": acc, "macro_f1": acc - 0.1,
                     "balanced_accuracy": acc - 0.05, "stopped_changing": stop}
                )  # fmt: skip
        out.append(
            {
                "arm": FULL,
                "seed": seed,
                "n_labeled": 100,
                "accuracy": 0.95,
                "macro_f1": 0.9,
                "balanced_accuracy": 0.92,
            }
        )
    return out


def test_collapses_are_counted_against_random_at_the_same_seed_and_labels(tmp_path: Path) -> None:
    _write(tmp_path / "results.csv", rows())
    results = read_results(tmp_path / "results.csv")
    assert results.metrics == ("accuracy", "macro_f1", "balanced_accuracy")
    found = collapses(results)
    assert (
        found["unisal"] == [(1, 30, 0.5, pytest.approx(0.9))]
        and found["margin"] == []
        and found["random"] == []
    )


def test_the_stop_table_gives_the_first_round_it_held_and_the_gaps(tmp_path: Path) -> None:
    _write(tmp_path / "results.csv", rows())
    table = "\n".join(stop_table(read_results(tmp_path / "results.csv")))
    # seeds 0 and 2: first held in round 1 (20 labels, 0.87), final 0.92, full 0.95
    assert (
        "| unisal | 2/3 | 1.0 ± 0.0 | 20.0 ± 0.0 | 0.870 ± 0.000 | 0.920 ± 0.000 | 0.050 ± 0.000 | 0.080 ± 0.000 |"
        in table
    )
    assert "| random | 0/3 |" in table


def test_versus_table_pairs_seeds(tmp_path: Path) -> None:
    _write(tmp_path / "results.csv", rows())
    results = read_results(tmp_path / "results.csv")
    lines = versus_table(results, "unisal")
    margin = next(line for line in lines if line.startswith("| margin |"))
    # per seed AUBC differences: 0.02, 0.02, and in seed 1 the first half +0.02, the second
    # (0.87 + 0.5) / 2 - (0.85 + 0.9) / 2 = -0.19: (0.02 - 0.19) / 2 = -0.085
    diff = np.array([0.02, -0.085, 0.02])
    assert f"{diff.mean():.4f} ± {diff.std(ddof=1):.4f}" in margin and "2/3 seeds" in margin


def test_summary_names_the_default_arm_and_orders_by_the_main_metric(tmp_path: Path) -> None:
    _write(tmp_path / "results.csv", rows())
    (tmp_path / "benchmark.yaml").write_text(
        yaml.safe_dump({"base": {"query": {"strategy": "unisal"}}, "main_metric": "balanced_accuracy"})
    )
    summary = write_report(tmp_path).read_text()
    assert "\ndefault arm: unisal\n" in summary
    assert "Main figure: balanced accuracy" in summary
    assert summary.index("## Test balanced accuracy") < summary.index("## Test accuracy")
    assert "| unisal | 9 | 1 | 1: 30, 0.500 vs 0.900 |" in summary
    no_default = summary_markdown(read_results(tmp_path / "results.csv"), default="nope")
    assert "default arm:" not in no_default and "## The default arm" not in no_default


def test_recipes_name_arms_and_pin_settings(tmp_path: Path) -> None:
    from unisal.benchmark.spec import LearnerSpec, parse_arms, run_config
    from unisal.config import ConfigError, build_config

    frozen = LearnerSpec("frozen")
    arms = parse_arms("unisal+v1,unisal+balanced+debias,unisal@frozen:supervised+guard", [frozen])
    assert [a.label(frozen) for a in arms] == [
        "unisal+v1",
        "unisal+balanced+debias",
        "unisal+guard (frozen:supervised)",
    ]
    assert [a.key for a in arms] == [
        "unisal@frozen+v1",
        "unisal@frozen+balanced+debias",
        "unisal@frozen-supervised+guard",
    ]
    base = build_config(
        "cpu",
        {"train": {"labelled_sampling": "balanced", "warm_start": True}, "learner": {"guard": "fallback"}},
    )
    pinned = run_config(base, arms[0], 3, tmp_path)
    assert (pinned.train.labelled_sampling, pinned.train.warm_start, pinned.learner.guard) == (
        "uniform",
        False,
        "off",
    )
    both = run_config(base, arms[1], 3, tmp_path)
    assert (both.train.labelled_sampling, both.train.pseudo_labels) == ("balanced", "debias")
    with pytest.raises(ConfigError, match="unknown recipe 'balance' \\(did you mean 'balanced'\\?\\)"):
        parse_arms("unisal+balance", [frozen])


def test_stop_sensitivity_recomputes_the_criterion_from_the_kappas(tmp_path: Path) -> None:
    """Kappas 0.96, 0.97 over rounds 1-2 (window 2): the mean 0.965 reaches 0.95 at round 2 (30
    labels) and never 0.98."""
    from unisal.benchmark.report import stop_sensitivity_table

    data = rows()
    for row in data:
        if row["arm"] == "unisal":
            row["stop_kappa"] = {0: "", 1: 0.96, 2: 0.97}[int(row["round"])]  # type: ignore[call-overload]
    _write(tmp_path / "results.csv", data)
    table = "\n".join(stop_sensitivity_table(read_results(tmp_path / "results.csv"), "unisal", window=2))
    assert "| 0.95 | 3/3 | 30 ± 0 |" in table and "| 0.98 | 0/3 |" in table
