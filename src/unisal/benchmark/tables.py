"""The Markdown tables of a benchmark's summary.md, one function each (known answers in tests/benchmark)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from unisal.benchmark.results import (
    ALPHA,
    METRIC_NAMES,
    TARGETS,
    Results,
    aubc,
    collapses,
    labels_to_reach,
    mean_std,
    penalty_matrix,
    seed_aubc,
    values_at,
)
from unisal.benchmark.spec import FULL


# ---- formatting
def fmt(mean: float, std: float, digits: int = 3) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def arm_order(results: Results, metric: str = "accuracy") -> list[str]:
    """Arms by mean AUBC of ``metric``, best first."""
    score = {
        arm: np.mean([aubc(c.n_labeled, c.values[metric]) for c in by_seed.values()])
        for arm, by_seed in results.curves.items()
    }
    return sorted(results.arms, key=lambda a: -score[a])


def metric_table(results: Results, metric: str, main: str = "accuracy") -> list[str]:
    budgets = results.budgets()
    lines = ["| arm | " + " | ".join(str(n) for n in budgets) + " |", "|---" * (len(budgets) + 1) + "|"]
    for arm in arm_order(results, main):
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
    for arm in arm_order(results, main):
        by_seed = results.curves[arm]
        cells = [
            fmt(*mean_std([aubc(c.n_labeled, c.values[m]) for c in by_seed.values()]), 4)
            for m in results.metrics
        ]
        lines.append(f"| {arm} | {len(by_seed)} | " + " | ".join(cells) + " |")
    return lines


def versus_table(results: Results, default: str, main: str = "accuracy") -> list[str]:
    """The default arm's AUBC against every other arm's, paired over the seeds both have."""
    lines = [
        f"| arm | seeds | {default} minus arm, AUBC {METRIC_NAMES[main]} | paired t-test p | {default} higher in |",
        "|---|---|---|---|---|",
    ]
    mine = seed_aubc(results, default, main)
    for arm in arm_order(results, main):
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


def collapse_table(results: Results, main: str = "accuracy") -> list[str]:
    found = collapses(results)
    if not found:
        return ["No `random` arm: collapses (accuracy far below random's) cannot be counted."]
    lines = [
        "| arm | trainings | collapsed | which (seed: labels, accuracy vs random's) |",
        "|---|---|---|---|",
    ]
    for arm in arm_order(results, main):
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
    for arm in arm_order(results, main):
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
    for arm in arm_order(results, main):
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
    arms = arm_order(results, metric)
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
    for arm in arm_order(results, main):
        timing = results.seconds.get(arm, {})
        cells = [fmt(*mean_std(timing[k]), 2) if timing.get(k) else "" for k in ("train", "select")]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return lines
