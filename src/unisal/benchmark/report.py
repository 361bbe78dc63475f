"""From ``results.csv`` alone to ``summary.md``, ``curves.png`` and ``curves.svg``.

Statistics (each seed is one paired replicate: every arm of a seed shares its split and initial
labelled set):

- mean ± sample std (ddof = 1) over seeds of test accuracy and macro-F1 at each label count;
- AUBC: area under the accuracy (or macro-F1) curve against the number of labels, divided by
  the label range (trapezoids), per seed, then mean ± std;
- labels to reach 95 / 98 / 99 % of that seed's full-supervision accuracy: the first label
  count at which the curve reaches it, mean ± std over the seeds that reached it;
- the pairwise penalty matrix of Lüth et al. (NeurIPS 2023): arm A beats arm B at a label count
  when a two-sided paired t-test over seeds gives p < 0.05 and A's mean is higher; the entry is
  the number of label counts (of those where both have at least two seeds) at which A beats B.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from unisal.benchmark.spec import FULL
from unisal.errors import RunError
from unisal.io import atomic_path, read_csv_rows, write_text_atomic
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


# ---- formatting
def fmt(mean: float, std: float, digits: int = 3) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _order(results: Results, metric: str = "accuracy") -> list[str]:
    """Arms by mean AUBC of ``metric``, best first."""
    score = {
        arm: np.mean([aubc(c.n_labeled, c.values[metric]) for c in by_seed.values()])
        for arm, by_seed in results.curves.items()
    }
    return sorted(results.arms, key=lambda a: -score[a])


def metric_table(results: Results, metric: str, main: str = "accuracy") -> list[str]:
    budgets = results.budgets()
    lines = ["| arm | " + " | ".join(str(n) for n in budgets) + " |", "|---" * (len(budgets) + 1) + "|"]
    for arm in _order(results, main):
        cells = []
        for n in budgets:
            v = list(values_at(results, arm, n, metric).values())
            cells.append(fmt(*mean_std(v)) if v else "")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    if results.full:
        v = [f[metric] for f in results.full.values()]
        n_full = sorted(set(results.full_n_labeled.values()))
        lines.append(
            f"| {FULL} ({'/'.join(map(str, n_full))} labels) | {fmt(*mean_std(v))} |"
            + " |" * (len(budgets) - 1)
        )
    return lines


def aubc_table(results: Results, main: str = "accuracy") -> list[str]:
    heads = " | ".join(f"AUBC {METRIC_NAMES[m]}" for m in results.metrics)
    lines = [f"| arm | seeds | {heads} |", "|---" * (len(results.metrics) + 2) + "|"]
    for arm in _order(results, main):
        by_seed = results.curves[arm]
        cells = [
            fmt(*mean_std([aubc(c.n_labeled, c.values[m]) for c in by_seed.values()]), 4)
            for m in results.metrics
        ]
        lines.append(f"| {arm} | {len(by_seed)} | " + " | ".join(cells) + " |")
    return lines


def seed_aubc(results: Results, arm: str, metric: str) -> dict[int, float]:
    """Seed -> AUBC of ``metric`` of ``arm``."""
    return {seed: aubc(c.n_labeled, c.values[metric]) for seed, c in results.curves[arm].items()}


def versus_table(results: Results, default: str, main: str = "accuracy") -> list[str]:
    """The default arm's AUBC against every other arm's, paired over the seeds both have."""
    lines = [
        f"| arm | seeds | {default} minus arm, AUBC {METRIC_NAMES[main]} | paired t-test p | {default} higher in |",
        "|---|---|---|---|---|",
    ]
    mine = seed_aubc(results, default, main)
    for arm in _order(results, main):
        if arm == default:
            continue
        theirs = seed_aubc(results, arm, main)
        seeds = sorted(set(mine) & set(theirs))
        if not seeds:
            continue
        diff = np.array([mine[s] - theirs[s] for s in seeds])
        p = (
            float(stats.ttest_rel([mine[s] for s in seeds], [theirs[s] for s in seeds]).pvalue)
            if (len(seeds) > 1 and not np.allclose(diff, diff[0]))
            else float("nan")
        )
        shown_p = "" if np.isnan(p) else f"{p:.3f}"
        lines.append(
            f"| {arm} | {len(seeds)} | {fmt(*mean_std(diff), 4)} | {shown_p} | {int((diff > 0).sum())}/{len(seeds)} seeds |"
        )
    return lines


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


def collapse_table(results: Results, main: str = "accuracy") -> list[str]:
    found = collapses(results)
    if not found:
        return ["No `random` arm: collapses (accuracy far below random's) cannot be counted."]
    lines = [
        "| arm | trainings | collapsed | which (seed: labels, accuracy vs random's) |",
        "|---|---|---|---|",
    ]
    for arm in _order(results, main):
        n = sum(len(c.n_labeled) for c in results.curves[arm].values())
        shown = "; ".join(f"{s}: {k}, {a:.3f} vs {r:.3f}" for s, k, a, r in found[arm][:6])
        more = f"; ... {len(found[arm]) - 6} more" if len(found[arm]) > 6 else ""
        lines.append(f"| {arm} | {n} | {len(found[arm])} | {shown}{more} |")
    return lines


STOP_THRESHOLDS = (0.95, 0.98, 0.99)


def stop_sensitivity_table(results: Results, arm: str, *, window: int = 3) -> list[str]:
    """For ``arm``, where the criterion would first hold at other kappa thresholds (same window),
    recomputed from the recorded ``stop_kappa`` values: seeds where it held, labels then, and the
    accuracy gaps to the run's final round and to full supervision (mean ± std)."""
    from unisal.stopping import first_stop

    lines = [
        f"| threshold (window {window}) | fired in | labels | accuracy then | final minus then | full minus then |",
        "|---|---|---|---|---|---|",
    ]
    for threshold in STOP_THRESHOLDS:
        fired = []
        for seed, c in results.curves[arm].items():
            if c.kappa is None:
                continue
            kappas = [None if np.isnan(k) else float(k) for k in c.kappa]
            k = first_stop(kappas, window=window, threshold=threshold)
            if k is None:
                continue
            acc = c.values["accuracy"]
            full = results.full.get(seed, {}).get("accuracy", np.nan)
            fired.append((c.n_labeled[k], acc[k], acc[-1] - acc[k], full - acc[k]))
        total = len(results.curves[arm])
        if not fired:
            lines.append(f"| {threshold} | 0/{total} |  |  |  |  |")
            continue
        cols = np.array(fired, np.float64)
        cells = [fmt(*mean_std(cols[:, j]), 0 if j == 0 else 3) for j in range(4)]
        lines.append(f"| {threshold} | {len(fired)}/{total} | " + " | ".join(cells) + " |")
    return lines


def stop_table(results: Results, main: str = "accuracy") -> list[str]:
    """Per arm, where the stop criterion first held: round, labels, accuracy then, gap to the run's
    final accuracy and to full supervision (mean ± std over the seeds where it held)."""
    lines = [
        "| arm | fired in | round | labels | accuracy then | final accuracy | final minus then | full minus then |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm in _order(results, main):
        fired = []
        for seed, c in results.curves[arm].items():
            if c.stopped is None or not c.stopped.any():
                continue
            k = int(np.flatnonzero(c.stopped)[0])
            acc = c.values["accuracy"]
            full = results.full.get(seed, {}).get("accuracy", np.nan)
            fired.append((k, c.n_labeled[k], acc[k], acc[-1], acc[-1] - acc[k], full - acc[k]))
        total = len(results.curves[arm])
        if not fired:
            lines.append(f"| {arm} | 0/{total} |  |  |  |  |  |  |")
            continue
        cols = np.array(fired, np.float64)
        cells = [fmt(*mean_std(cols[:, j]), 1 if j < 2 else 3) for j in range(6)]
        lines.append(f"| {arm} | {len(fired)}/{total} | " + " | ".join(cells) + " |")
    return lines


def target_table(results: Results, main: str = "accuracy") -> list[str]:
    heads = " | ".join(f"{round(t * 100)} % of full" for t in TARGETS)
    lines = [f"| arm | {heads} |", "|---" * (len(TARGETS) + 1) + "|"]
    for arm in _order(results, main):
        cells = []
        for t in TARGETS:
            reached, tried = [], 0
            for seed, curve in results.curves[arm].items():
                if seed not in results.full:
                    continue
                tried += 1
                n = labels_to_reach(curve.n_labeled, curve.values[main], t * results.full[seed][main])
                if n is not None:
                    reached.append(n)
            if not tried:
                cells.append("no reference")
            elif not reached:
                cells.append(f"not reached (0/{tried})")
            else:
                m, s = mean_std(reached)
                cells.append(f"{m:.0f} ± {s:.0f} ({len(reached)}/{tried})")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return lines


def penalty_table(results: Results, metric: str = "accuracy") -> list[str]:
    arms = _order(results, metric)
    index = {a: i for i, a in enumerate(results.arms)}
    wins, compared = penalty_matrix(results, metric)
    short = [f"{k + 1}" for k in range(len(arms))]
    lines = [
        "| row beats column | " + " | ".join(short) + " | total wins | total losses |",
        "|---" * (len(arms) + 3) + "|",
    ]
    for k, a in enumerate(arms):
        i = index[a]
        cells = ["·" if a == b else str(wins[i, index[b]]) for b in arms]
        lost = sum(wins[index[b], i] for b in arms)
        lines.append(f"| {k + 1}. {a} | " + " | ".join(cells) + f" | {wins[i].sum()} | {lost} |")
    n_max = int(compared.max()) if compared.size else 0
    lines.append("")
    lines.append(
        f"Each entry counts the label counts (of {n_max}) at which the row arm's {metric} beats the "
        f"column arm's: paired t-test over seeds, two-sided, p < {ALPHA}, higher mean."
    )
    return lines


def timing_table(results: Results, main: str = "accuracy") -> list[str]:
    lines = ["| arm | training s / round | selection s / round |", "|---|---|---|"]
    for arm in _order(results, main):
        timing = results.seconds.get(arm, {})
        cells = [fmt(*mean_std(timing[k]), 2) if timing.get(k) else "" for k in ("train", "select")]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return lines


def summary_markdown(
    results: Results,
    *,
    title: str = "Benchmark",
    settings: list[str] | None = None,
    default: str | None = None,
    main: str = "accuracy",
    window: int = 3,
) -> str:
    """The whole summary; ``default`` names the preset's default arm, ``main`` the metric that
    orders the arms and drives the targets, the comparisons and the penalty matrix."""
    seeds = results.seeds
    main = main if main in results.metrics else "accuracy"
    name = METRIC_NAMES[main]
    lines = [f"# {title}", ""]
    lines += settings or []
    if default in results.curves:
        lines += [f"default arm: {default}", ""]
    lines += [
        f"Seeds: {', '.join(map(str, seeds))} ({len(seeds)}). Every arm of a seed shares its split and "
        "initial labelled set, so comparisons are paired. Values are mean ± sample std over seeds. "
        f"Main figure: {name} (arms are ordered by its AUBC).",
        "",
    ]
    for metric in dict.fromkeys([main, *results.metrics]):
        lines += [f"## Test {METRIC_NAMES[metric]} by number of labels", ""]
        if metric == "macro_f1":
            lines += [
                "Macro-F1 averages over every class; a class absent from the test split counts as 0.",
                "",
            ]
        if metric == "balanced_accuracy":
            lines += ["Balanced accuracy: the mean of the per-class recalls.", ""]
        lines += [*metric_table(results, metric, main), ""]
    lines += [
        "## Area under the budget curve (AUBC)",
        "",
        "Trapezoids over the label range, divided by that range; per seed, then mean ± std.",
        "",
        *aubc_table(results, main),
        "",
    ]
    if default in results.curves:
        lines += [
            f"## The default arm against each other arm (AUBC {name})",
            "",
            "Per seed the difference of the two arms' AUBC; mean ± std over the seeds both have, and a "
            "two-sided paired t-test. A difference within its std is noise, not a win.",
            "",
            *versus_table(results, default, main),
            "",
        ]
    lines += [
        f"## Labels needed to reach a fraction of full-supervision {name}",
        "",
        f"Per seed, the first label count at which test {name} reaches the fraction of that seed's "
        f"full-supervision {name}; mean ± std over the seeds that reached it (reached/total).",
        "",
        *target_table(results, main),
        "",
        "## Collapsed trainings",
        "",
        f"A training collapsed when its test accuracy is more than {COLLAPSE_GAP:.2f} below the random "
        "arm's at the same seed and number of labels.",
        "",
        *collapse_table(results, main),
        "",
        "## When the stop criterion first held",
        "",
        "The stabilising-predictions criterion (unisal.stopping): the round where it first held per "
        "seed, and the test accuracy then, at the run's last round and with full supervision; mean ± "
        "std over the seeds where it held.",
        "",
        *stop_table(results, main),
        "",
    ]
    if default in results.curves:
        lines += [
            f"The same for {default} at other kappa thresholds, recomputed from its recorded kappas:",
            "",
            *stop_sensitivity_table(results, default, window=window),
            "",
        ]
    lines += [
        f"## Pairwise penalty matrix (test {name})",
        "",
        *penalty_table(results, main),
        "",
        "## Time per round",
        "",
        "Mean ± std over rounds and seeds, as measured in the runs (selection includes scoring the pool).",
        "",
        *timing_table(results, main),
        "",
    ]
    return "\n".join(lines)


# ---- plots
# Distinct colours (Okabe-Ito, then tab10's): readable with colour-vision deficiencies first.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
           "#8c564b", "#17becf", "#bcbd22", "#1f77b4", "#d62728"]  # fmt: skip


def arm_style(arm: str, k: int) -> dict[str, object]:
    """UniSAL thick and purple, its ablations dashed, random grey; the rest from ``PALETTE``."""
    if arm == "unisal":
        return {"color": "#6a3d9a", "lw": 3.0, "ls": "-"}
    if arm == "random":
        return {"color": "#555555", "lw": 1.8, "ls": "-"}
    if arm in ("dus_random", "cs_only"):
        return {"color": "#9e7cc1" if arm == "dus_random" else "#c9a0dc", "lw": 1.8, "ls": "--"}
    if arm.startswith("unisal"):
        return {"color": "#6a3d9a", "lw": 1.8, "ls": ":"}
    return {"color": PALETTE[k % len(PALETTE)], "lw": 1.4, "ls": "-"}


def plot_curves(results: Results, out_stem: Path) -> list[Path]:
    """``out_stem``.png and .svg: accuracy and macro-F1 against labels, mean ± std per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = _order(results)
    others = [a for a in arms if not a.startswith("unisal") and a not in ("random", "dus_random", "cs_only")]
    fig, axes = plt.subplots(1, 2, figsize=(14, 6.2))
    for ax, metric in zip(axes, METRICS, strict=True):
        lowest = 1.0
        for arm in arms:
            style = arm_style(arm, others.index(arm) if arm in others else 0)
            budgets = sorted({int(n) for c in results.curves[arm].values() for n in c.n_labeled})
            stats_ = [mean_std(list(values_at(results, arm, n, metric).values())) for n in budgets]
            mean = np.array([m for m, _ in stats_])
            std = np.array([s for _, s in stats_])
            ax.plot(budgets, mean, label=arm, marker="o", ms=3, **style)
            ax.fill_between(
                budgets, mean - std, np.minimum(mean + std, 1.0), color=style["color"], alpha=0.08, lw=0
            )
            lowest = min(lowest, float(mean.min()))
        if results.full:
            m, s = mean_std([f[metric] for f in results.full.values()])
            ax.axhline(m, color="black", ls=":", lw=1.2, label=f"{FULL} ({m:.3f})")
            ax.axhspan(m - s, m + s, color="black", alpha=0.06, lw=0)
        ax.set_ylim(max(0.0, lowest - 0.03), 1.0)  # the means decide the range, not a wide band
        ax.set_xlabel("labelled images")
        ax.set_ylabel("test " + metric.replace("_", "-").replace("macro-f1", "macro-F1"))
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=9, frameon=False)
    fig.suptitle(f"mean line, ±std band over {len(results.seeds)} seeds (legend: best AUBC first)")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    paths = [out_stem.with_suffix(".png"), out_stem.with_suffix(".svg")]
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=130, format=path.suffix[1:])
    plt.close(fig)
    return paths


def benchmark_choices(folder: Path) -> tuple[str | None, str, int]:
    """The default arm (the base's strategy, no recipe, the default learner: its label is the
    strategy's name), the main metric and the stop criterion's window, from the folder's
    ``benchmark.yaml``; (None, accuracy, 3) without one."""
    import yaml

    try:
        saved = yaml.safe_load((folder / "benchmark.yaml").read_text()) or {}
        strategy = saved["base"]["query"]["strategy"]
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        return None, "accuracy", 3
    main = saved.get("main_metric", "accuracy")
    window = saved["base"]["query"].get("stop_window", 3)
    window = window if isinstance(window, int) and window >= 1 else 3
    return str(strategy), main if main in METRIC_NAMES else "accuracy", window


def write_report(folder: str | Path, *, title: str = "Benchmark", settings: list[str] | None = None) -> Path:
    """Rebuild ``summary.md`` and the curves of a benchmark folder from its ``results.csv`` (and
    ``benchmark.yaml`` for the default arm and the main metric)."""
    folder = Path(folder)
    results = read_results(folder / "results.csv")
    if not settings and (folder / "settings.md").is_file():
        settings = (folder / "settings.md").read_text().splitlines() + [""]
    default, main, window = benchmark_choices(folder)
    text = summary_markdown(
        results, title=title, settings=settings, default=default, main=main, window=window
    )
    write_text_atomic(folder / "summary.md", text)
    plot_curves(results, folder / "curves")
    return folder / "summary.md"
