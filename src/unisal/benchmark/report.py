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

from pathlib import Path

import numpy as np

from unisal.benchmark.results import (
    ALPHA,
    COLLAPSE_GAP,
    METRIC_NAMES,
    METRICS,
    OPTIONAL_METRICS,
    RESULT_COLUMNS,
    TARGETS,
    Curve,
    Results,
    aubc,
    collapses,
    labels_to_reach,
    mean_std,
    paired_win,
    penalty_matrix,
    read_results,
    seed_aubc,
    values_at,
)
from unisal.benchmark.spec import FULL
from unisal.benchmark.tables import (
    STOP_THRESHOLDS,
    arm_order,
    aubc_table,
    collapse_table,
    fmt,
    metric_table,
    penalty_table,
    stop_sensitivity_table,
    stop_table,
    target_table,
    timing_table,
    versus_table,
)
from unisal.io import atomic_path, write_text_atomic


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

    arms = arm_order(results)
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


__all__ = [
    "ALPHA",
    "COLLAPSE_GAP",
    "Curve",
    "METRICS",
    "METRIC_NAMES",
    "OPTIONAL_METRICS",
    "RESULT_COLUMNS",
    "Results",
    "STOP_THRESHOLDS",
    "TARGETS",
    "arm_order",
    "aubc",
    "aubc_table",
    "collapse_table",
    "collapses",
    "fmt",
    "labels_to_reach",
    "mean_std",
    "metric_table",
    "paired_win",
    "penalty_matrix",
    "penalty_table",
    "read_results",
    "seed_aubc",
    "stop_sensitivity_table",
    "stop_table",
    "target_table",
    "timing_table",
    "values_at",
    "versus_table",
    "summary_markdown",
    "PALETTE",
    "arm_style",
    "plot_curves",
    "benchmark_choices",
    "write_report",
]
