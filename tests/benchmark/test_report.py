"""Known answers for the benchmark statistics, and a report rebuilt from results.csv alone."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from unisal.benchmark.report import (
    RESULT_COLUMNS,
    aubc,
    labels_to_reach,
    mean_std,
    paired_win,
    penalty_matrix,
    read_results,
    write_report,
)
from unisal.benchmark.spec import FULL
from unisal.errors import InputFileError, RunError


def test_aubc_known_values():
    assert aubc(np.array([10, 20, 30]), np.array([0.5, 0.7, 0.9])) == pytest.approx(0.7)
    assert aubc(np.array([0, 10, 30]), np.array([0.0, 1.0, 1.0])) == pytest.approx((5 + 20) / 30)
    assert aubc(np.array([50]), np.array([0.8])) == pytest.approx(0.8)


def test_labels_to_reach_first_crossing_or_none():
    n, y = np.array([10, 20, 30, 40]), np.array([0.5, 0.91, 0.89, 0.95])
    assert labels_to_reach(n, y, 0.9) == 20
    assert labels_to_reach(n, y, 0.95) == 40
    assert labels_to_reach(n, y, 0.96) is None


def test_mean_std_uses_the_sample_std():
    assert mean_std([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert mean_std([0.5]) == (0.5, 0.0)


def test_paired_win_follows_the_paired_t_test():
    a = np.array([0.80, 0.82, 0.85, 0.81, 0.83])
    assert paired_win(a + np.array([0.05, 0.06, 0.04, 0.05, 0.055]), a) is True  # consistent gain
    assert paired_win(a, a + 0.05) is False  # the other way round
    noisy = a + np.array([0.05, -0.04, 0.03, -0.05, 0.02])  # a gain within noise
    assert paired_win(noisy, a) is False
    assert paired_win(a, a) is False
    assert paired_win(a[:1], a[:1]) is None  # one seed: no test


def _write(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, RESULT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in RESULT_COLUMNS})


def _rows() -> list[dict[str, object]]:
    """Three arms x 4 seeds x 3 budgets: 'good' beats 'bad' everywhere, 'noisy' ties with 'bad'."""
    rows: list[dict[str, object]] = []
    rng = np.random.default_rng(0)
    for seed in range(4):
        base = 0.7 + 0.01 * seed
        for r, n in enumerate((10, 20, 30)):
            bad = base + 0.05 * r
            for arm, value in (("bad", bad), ("good", bad + 0.08), ("noisy", bad + rng.normal(scale=0.03))):
                rows.append(
                    {
                        "arm": arm,
                        "seed": seed,
                        "round": r,
                        "n_labeled": n,
                        "accuracy": value,
                        "macro_f1": value - 0.1,
                    }
                )
        rows.append(
            {"arm": FULL, "seed": seed, "n_labeled": 100, "accuracy": base + 0.2, "macro_f1": base + 0.1}
        )
    return rows


def test_penalty_matrix_counts_significant_wins(tmp_path: Path):
    _write(tmp_path / "results.csv", _rows())
    results = read_results(tmp_path / "results.csv")
    assert results.arms == ["bad", "good", "noisy"] and results.seeds == [0, 1, 2, 3]
    wins, compared = penalty_matrix(results)
    i = {a: k for k, a in enumerate(results.arms)}
    assert wins[i["good"], i["bad"]] == 3 and wins[i["bad"], i["good"]] == 0
    assert compared[i["good"], i["bad"]] == 3
    assert wins[i["noisy"], i["bad"]] < 3 and wins[i["good"], i["good"]] == 0


def test_report_is_rebuilt_from_results_csv_alone(tmp_path: Path):
    _write(tmp_path / "results.csv", _rows())
    summary = write_report(tmp_path).read_text()
    assert (tmp_path / "curves.png").stat().st_size > 10_000 and (tmp_path / "curves.svg").is_file()
    assert "| good | 0.795 ± 0.013 | 0.845 ± 0.013 | 0.895 ± 0.013 |" in summary  # mean ± sample std
    assert f"| {FULL} (100 labels) | 0.915 ± 0.013 |" in summary
    # 95 % of full (0.869 .. 0.898): 'good' reaches it at 30 labels for every seed, 'bad' never
    assert "| good | 30 ± 0 (4/4) |" in summary
    assert "| bad | not reached (0/4) |" in summary
    assert "| 1. good | · | 3 | 3 | 6 | 0 |" in summary
    assert "## Time per round" in summary


def test_a_malformed_results_file_is_a_clear_error(tmp_path: Path):
    (tmp_path / "results.csv").write_text("a,b\n1,2\n")
    with pytest.raises(RunError, match="holds no benchmark results"):
        read_results(tmp_path / "results.csv")
    with pytest.raises(InputFileError, match="CSV file not found"):
        read_results(tmp_path / "missing.csv")


def test_report_on_a_results_file_that_is_not_utf8_is_one_line(tmp_path: Path):
    from click.testing import CliRunner

    from unisal.cli.main import cli

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "results.csv").write_bytes(b"arm,seed\nr\xe9,0\n\xff\xfe")
    result = CliRunner().invoke(cli, ["report", str(tmp_path / "b")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "is not UTF-8 text (byte 0xe9 at offset 10): save it as UTF-8 CSV" in result.output
    assert "Traceback" not in result.output
