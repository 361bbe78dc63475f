"""A benchmark's results.csv read into curves per arm and seed, and the statistics every table uses: AUBC, labels to reach a target, paired tests, the penalty matrix, collapses."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from unisal.benchmark.spec import FULL
from unisal.errors import RunError
from unisal.io import read_csv_rows
from unisal.run_folder import ROUND_COLUMNS, TIMING_COLUMNS

RESULT_COLUMNS = [
    "arm", "strategy", "learner", "seed", *ROUND_COLUMNS, *TIMING_COLUMNS[1:], "n_candidates",
    "stop_kappa", "stopped_changing", "heads_agree", "pool_share_min", "labelled_recall_min",
    "cv_accuracy", "cv_low", "cv_high",
    "guard_fallback", "guard_reason", "guard_kappa", "guard_share_ratio", "accuracy_cotrain", "accuracy_supervised",
]  # fmt: skip


METRICS = ("accuracy", "macro_f1")


OPTIONAL_METRICS = ("balanced_accuracy",)  # in results.csv files written since issue 15


METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "balanced_accuracy": "balanced accuracy"}


TARGETS = (0.95, 0.98, 0.99)


ALPHA = 0.05


COLLAPSE_GAP = 0.10  # a training collapsed: accuracy this far below the random arm's (same seed, labels)


@dataclass
class Curve:
    """One arm and seed: label counts (R,) ascending, each metric (R,), and whether the stop
    criterion held in that round (R,) bool (all false for results without it)."""

    n_labeled: np.ndarray
    values: dict[str, np.ndarray]
    stopped: np.ndarray | None = None
    kappa: np.ndarray | None = None  # (R,) stop_kappa, NaN where blank (round 0, or not recorded)


@dataclass
class Results:
    """``results.csv`` read back: curves by arm and seed, full supervision by seed."""

    curves: dict[str, dict[int, Curve]] = field(default_factory=dict)
    full: dict[int, dict[str, float]] = field(default_factory=dict)
    full_n_labeled: dict[int, int] = field(default_factory=dict)
    seconds: dict[str, dict[str, list[float]]] = field(
        default_factory=dict
    )  # arm -> train/select -> per round
    metrics: tuple[str, ...] = METRICS  # those every row holds: METRICS and, where present, OPTIONAL_METRICS

    @property
    def arms(self) -> list[str]:
        return list(self.curves)

    @property
    def seeds(self) -> list[int]:
        return sorted({s for by_seed in self.curves.values() for s in by_seed} | set(self.full))

    def budgets(self) -> list[int]:
        return sorted(
            {int(n) for by_seed in self.curves.values() for c in by_seed.values() for n in c.n_labeled}
        )


def read_results(path: str | Path) -> Results:
    path = Path(path)
    _, rows = read_csv_rows(path)
    missing = {"arm", "seed", "n_labeled", *METRICS} - set(rows[0] if rows else {})
    if not rows or missing:
        raise RunError(
            f"{path} holds no benchmark results" + (f" (missing {sorted(missing)})" if rows else "")
        )
    points: dict[str, dict[int, list[tuple[int, dict[str, float], bool, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    metrics = METRICS + tuple(
        m for m in OPTIONAL_METRICS if all(row.get(m) not in (None, "") for row in rows)
    )
    results = Results(metrics=metrics)
    try:
        for row in rows:
            seed, n = int(row["seed"]), int(row["n_labeled"])
            values = {m: float(row[m]) for m in metrics}
            if row["arm"] == FULL:
                results.full[seed], results.full_n_labeled[seed] = values, n
            else:
                kappa = float(row["stop_kappa"]) if row.get("stop_kappa") not in (None, "") else float("nan")
                stopped = row.get("stopped_changing") in ("1", "True")
                points[row["arm"]][seed].append((n, values, stopped, kappa))
                timing = results.seconds.setdefault(row["arm"], {"train": [], "select": []})
                for kind in ("train", "select"):
                    if row.get(f"{kind}_seconds"):
                        timing[kind].append(float(row[f"{kind}_seconds"]))
    except ValueError as exc:
        raise RunError(f"{path}: a row has a malformed number ({exc})") from exc
    for arm, by_seed in points.items():
        results.curves[arm] = {}
        for seed, pts in sorted(by_seed.items()):
            pts.sort(key=lambda p: p[0])
            results.curves[arm][seed] = Curve(
                np.array([p[0] for p in pts]),
                {m: np.array([p[1][m] for p in pts]) for m in metrics},
                np.array([p[2] for p in pts], bool),
                np.array([p[3] for p in pts], np.float64),
            )
    return results


# ---- statistics (pure)
def mean_std(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    x = np.asarray(values, np.float64)
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else 0.0


def aubc(n_labeled: np.ndarray, values: np.ndarray) -> float:
    """Area under the curve (trapezoids) over the label range, divided by that range."""
    n, y = np.asarray(n_labeled, np.float64), np.asarray(values, np.float64)
    if len(n) == 1 or n[-1] == n[0]:
        return float(y.mean())
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(n)) / (n[-1] - n[0]))


def labels_to_reach(n_labeled: np.ndarray, values: np.ndarray, target: float) -> int | None:
    """First label count whose value reaches ``target``; None when the curve never does."""
    hits = np.flatnonzero(np.asarray(values) >= target)
    return int(np.asarray(n_labeled)[hits[0]]) if len(hits) else None


def paired_win(a: np.ndarray, b: np.ndarray, alpha: float = ALPHA) -> bool | None:
    """Whether ``a`` beats ``b`` (paired seeds, (S,) each): two-sided paired t-test p < alpha and a
    higher mean. None when fewer than two pairs; identical pairs never win."""
    if len(a) < 2:
        return None
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    if np.allclose(diff, 0.0):
        return False
    if np.allclose(diff, diff[0]):  # no spread: the t statistic is infinite
        return bool(diff[0] > 0)
    p = stats.ttest_rel(a, b).pvalue
    return bool(p < alpha and diff.mean() > 0)


def values_at(results: Results, arm: str, n: int, metric: str) -> dict[int, float]:
    """Seed -> value of ``arm`` at label count ``n``."""
    out = {}
    for seed, curve in results.curves[arm].items():
        hit = np.flatnonzero(curve.n_labeled == n)
        if len(hit):
            out[seed] = float(curve.values[metric][hit[0]])
    return out


def penalty_matrix(results: Results, metric: str = "accuracy") -> tuple[np.ndarray, np.ndarray]:
    """(A, A) wins of row over column, and (A, A) label counts compared, over common seeds."""
    arms = results.arms
    wins = np.zeros((len(arms), len(arms)), np.int64)
    compared = np.zeros_like(wins)
    for n in results.budgets():
        at = {arm: values_at(results, arm, n, metric) for arm in arms}
        for i, a in enumerate(arms):
            for j, b in enumerate(arms):
                seeds = sorted(set(at[a]) & set(at[b]))
                if i == j or len(seeds) < 2:
                    continue
                won = paired_win(np.array([at[a][s] for s in seeds]), np.array([at[b][s] for s in seeds]))
                compared[i, j] += 1
                wins[i, j] += int(bool(won))
    return wins, compared


def seed_aubc(results: Results, arm: str, metric: str) -> dict[int, float]:
    """Seed -> AUBC of ``metric`` of ``arm``."""
    return {seed: aubc(c.n_labeled, c.values[metric]) for seed, c in results.curves[arm].items()}


def collapses(results: Results, reference: str = "random") -> dict[str, list[tuple[int, int, float, float]]]:
    """Per arm, its collapsed trainings: (seed, labels, accuracy, random's accuracy) where the arm's
    test accuracy is more than ``COLLAPSE_GAP`` below the ``reference`` arm's at the same seed and
    label count. Empty when the reference arm is absent."""
    if reference not in results.curves:
        return {}
    out: dict[str, list[tuple[int, int, float, float]]] = {}
    for arm in results.arms:
        out[arm] = []
        for seed, curve in results.curves[arm].items():
            base = results.curves[reference].get(seed)
            if base is None:
                continue
            for n, acc in zip(curve.n_labeled, curve.values["accuracy"], strict=True):
                hit = np.flatnonzero(base.n_labeled == n)
                if len(hit) and acc < base.values["accuracy"][hit[0]] - COLLAPSE_GAP:
                    out[arm].append((int(seed), int(n), float(acc), float(base.values["accuracy"][hit[0]])))
    return out
