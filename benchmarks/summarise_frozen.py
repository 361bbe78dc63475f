"""Tables (mean ± std over seeds) and a plot from ``benchmarks/frozen_lung_experiment.sh`` outputs.

    .venv/bin/python benchmarks/summarise_frozen.py runs/frozen-lung \
        --finetune docs/results --plot docs/frozen-lc25000-lung-curve.png --copy docs/results/frozen-lc25000-lung

Prints Markdown. ``--finetune`` points at the committed fine-tuning runs
(``lc25000-lung-seed<k>/unisal/rounds.csv``) for the frozen-vs-fine-tuned table; ``--copy``
copies each run's ``rounds.csv``, ``config.yaml`` and the references' metrics (without their
confusion matrices and configs) next to the docs.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np

from unisal.run_folder import read_round_rows


def read_rounds(path: Path) -> list[dict[str, str]]:
    """A run's rounds.csv rows, with its timings.csv (where it has one) merged in."""
    return read_round_rows(path.parent)


def seeds_of(folder: Path) -> list[int]:
    return sorted(int(p.name[4:]) for p in folder.glob("seed*") if (p / "rounds.csv").is_file())


def curve(folder: Path, column: str = "accuracy") -> tuple[list[int], dict[int, np.ndarray]]:
    """n_labeled per round, and per seed the ``column`` of every round."""
    out, labels = {}, []
    for seed in seeds_of(folder):
        rows = read_rounds(folder / f"seed{seed}" / "rounds.csv")
        labels = [int(r["n_labeled"]) for r in rows]
        out[seed] = np.asarray([float(r[column]) for r in rows])
    return labels, out


def references(folder: Path) -> dict[int, np.ndarray]:
    out = {}
    for seed_dir in sorted(folder.glob("seed*")):
        rounds = sorted(seed_dir.glob("round_*/metrics.json"), key=lambda p: int(p.parent.name[6:]))
        out[int(seed_dir.name[4:])] = np.asarray([json.loads(p.read_text())["accuracy"] for p in rounds])
    return out


def stats(per_seed: dict[int, np.ndarray], seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    values = np.stack([per_seed[s] for s in seeds])
    return values.mean(0), values.std(0, ddof=1) if len(seeds) > 1 else np.zeros(values.shape[1])


def fmt(mean: float, std: float) -> str:
    return f"{mean:.4f} ± {std:.4f}"


def paired(a: dict[int, np.ndarray], b: dict[int, np.ndarray], seeds: list[int]) -> list[str]:
    """Mean ± std over seeds of a - b per round, flagged when |mean| < std (within noise)."""
    diff = np.stack([a[s] - b[s] for s in seeds])
    mean, std = diff.mean(0), diff.std(0, ddof=1)
    return [
        f"{m * 100:+.2f} ± {s * 100:.2f}" + (" (noise)" if abs(m) < s else "")
        for m, s in zip(mean, std, strict=True)
    ]


def curves_table(root: Path) -> tuple[str, dict[str, object]]:
    labels, unisal = curve(root / "curves" / "unisal")
    _, rand = curve(root / "curves" / "random")
    _, unisal_f1 = curve(root / "curves" / "unisal", "macro_f1")
    _, rand_f1 = curve(root / "curves" / "random", "macro_f1")
    sup2 = references(root / "curves" / "supervised-n2")
    sup1 = references(root / "curves" / "supervised-n1")
    seeds = sorted(set(unisal) & set(rand) & set(sup2) & set(sup1))
    cols = {
        "UniSAL": stats(unisal, seeds),
        "random": stats(rand, seeds),
        "supervised on UniSAL's labels, 2 nets": stats(sup2, seeds),
        "supervised on UniSAL's labels, 1 net": stats(sup1, seeds),
    }
    f1 = {"UniSAL": stats(unisal_f1, seeds), "random": stats(rand_f1, seeds)}
    gap_random = paired(unisal, rand, seeds)
    gap_sup = paired(unisal, sup2, seeds)
    lines = [
        f"Test accuracy, mean ± std over seeds {seeds}; gaps in points, paired by seed "
        "('noise': the mean gap is smaller than its std over seeds).",
        "",
        "| labels | % pool | " + " | ".join(cols) + " | UniSAL − random | UniSAL − supervised (2 nets) |"
        " UniSAL macro-F1 | random macro-F1 |",
        "|---" * (len(cols) + 6) + "|",
    ]
    for i, n in enumerate(labels):
        cells = [fmt(m[i], s[i]) for m, s in cols.values()]
        f1_cells = [fmt(m[i], s[i]) for m, s in f1.values()]
        lines.append(
            f"| {n} | {n / 105:.1f} | "
            + " | ".join(cells)
            + f" | {gap_random[i]} | {gap_sup[i]} | "
            + " | ".join(f1_cells)
            + " |"
        )
    return "\n".join(lines), {"labels": labels, "seeds": seeds, "cols": cols}


def scoring_table(root: Path) -> str:
    """UniSAL with predictions on the view-averaged features (mean), every view (tta) or view 0 (first)."""
    labels, mean_views = curve(root / "curves" / "unisal")
    runs = {
        "mean": mean_views,
        "tta": curve(root / "tta" / "unisal")[1],
        "first": curve(root / "first" / "unisal")[1],
    }
    seeds = sorted(set.intersection(*(set(r) for r in runs.values())))
    cells = {name: stats(r, seeds) for name, r in runs.items()}
    gaps = {name: paired(mean_views, runs[name], seeds) for name in ("tta", "first")}
    lines = [
        f"UniSAL (30 + 10 x 50 labels), test accuracy by how predictions see an image (seeds {seeds}):",
        "",
        "| labels | mean (view-averaged features) | tta (outputs averaged over views) | first (as is) | mean − tta | mean − first |",
        "|---|---|---|---|---|---|",
    ]
    for i, n in enumerate(labels):
        row = " | ".join(fmt(m[i], s[i]) for m, s in cells.values())
        lines.append(f"| {n} | {row} | {gaps['tta'][i]} | {gaps['first'][i]} |")
    means = {name: [round(float(np.mean(r[s])), 4) for s in seeds] for name, r in runs.items()}
    lines += ["", f"Mean accuracy over the 11 rounds, per seed: {means}."]
    return "\n".join(lines)


def full_table(root: Path) -> str:
    lines = ["| full supervision (10,500 labels) | accuracy | macro-F1 | seeds |", "|---|---|---|---|"]
    for networks in (2, 1):
        files = sorted((root / "full" / f"n{networks}").glob("seed*/metrics.json"))
        metrics = [json.loads(p.read_text()) for p in files]
        acc = np.asarray([m["accuracy"] for m in metrics])
        f1 = np.asarray([m["macro_f1"] for m in metrics])
        lines.append(
            f"| frozen, {networks} network{'s' if networks == 2 else ''} | "
            f"{fmt(acc.mean(), acc.std(ddof=1))} | {fmt(f1.mean(), f1.std(ddof=1))} | {len(files)} |"
        )
    return "\n".join(lines)


def speed_table(root: Path) -> str:
    wall = {}
    with (root / "wall_seconds.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            wall[row["job"]] = float(row["seconds"])
    lines = [
        "| run | wall s (whole command) | train s / round (mean, max) | select s / round (mean, max) |",
        "|---|---|---|---|",
    ]
    for seed in seeds_of(root / "speed" / "unisal"):
        rows = read_rounds(root / "speed" / "unisal" / f"seed{seed}" / "rounds.csv")
        train = np.asarray([float(r["train_seconds"]) for r in rows])
        select = np.asarray([float(r["select_seconds"]) for r in rows if r["select_seconds"]])
        lines.append(
            f"| UniSAL seed {seed}, {rows[0]['n_labeled']} + {len(rows) - 1} x 30 labels | "
            f"{wall[f'speed/unisal/seed{seed}']:.1f} | {train.mean():.1f}, {train.max():.1f} | "
            f"{select.mean():.1f}, {select.max():.1f} |"
        )
    return "\n".join(lines)


def finetune_table(root: Path, finetune: Path) -> str:
    lines = [
        "| seed | labels | fine-tuned (`cpu-finetune`) | frozen (`cpu`) | frozen − fine-tuned |",
        "|---|---|---|---|---|",
    ]
    gaps = []
    for seed in (0, 1):
        ft_file = finetune / f"lc25000-lung-seed{seed}" / "unisal" / "rounds.csv"
        fz_file = root / "speed" / "unisal" / f"seed{seed}" / "rounds.csv"
        if not (ft_file.is_file() and fz_file.is_file()):
            continue
        ft, fz = read_rounds(ft_file), read_rounds(fz_file)
        for a, b in zip(ft, fz[: len(ft)], strict=True):
            assert a["n_labeled"] == b["n_labeled"]
            gap = float(b["accuracy"]) - float(a["accuracy"])
            gaps.append(gap)
            lines.append(
                f"| {seed} | {a['n_labeled']} | {float(a['accuracy']):.4f} | {float(b['accuracy']):.4f} | {gap * 100:+.2f} |"
            )
    if gaps:
        lines += [
            "",
            f"Frozen ahead at {sum(g > 0 for g in gaps)} of {len(gaps)} (seed, round) pairs; mean gap {np.mean(gaps) * 100:+.2f} points.",
        ]
    return "\n".join(lines)


def full_accuracy(root: Path, networks: int = 2) -> float | None:
    files = sorted((root / "full" / f"n{networks}").glob("seed*/metrics.json"))
    return float(np.mean([json.loads(p.read_text())["accuracy"] for p in files])) if files else None


def plot(summary: dict[str, object], path: Path, full: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = np.asarray(summary["labels"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (name, (mean, std)), colour in zip(summary["cols"].items(), ["C3", "C0", "C2", "C7"], strict=True):  # type: ignore[attr-defined]
        ax.plot(labels, mean, marker="o", ms=3, color=colour, label=name)
        ax.fill_between(labels, mean - std, mean + std, color=colour, alpha=0.15)
    if full is not None:
        ax.axhline(full, color="k", ls="--", lw=1, label=f"full supervision, 10,500 labels ({full:.3f})")
        ax.set_ylim(top=full + 0.008)
    ax.set_xlabel("labelled images (pool: 10,500)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"LC25000 lung, frozen Lite0 features, seeds {summary['seeds']} (mean ± std)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def copy_raw(root: Path, target: Path) -> None:
    for rounds in root.glob("*/*/seed*/rounds.csv"):
        dest = target / rounds.parent.relative_to(root)
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("rounds.csv", "config.yaml"):
            shutil.copy(rounds.parent / name, dest / name)
    for metrics in root.glob("**/metrics.json"):
        dest = target / metrics.parent.relative_to(root)
        dest.mkdir(parents=True, exist_ok=True)
        values = json.loads(metrics.read_text())
        values.pop("config", None)
        values["run"] = re.sub(r"^.*?/(curves|speed|first)/", r"\1/", values["run"])
        (dest / "metrics.json").write_text(json.dumps(values, indent=1))
    for name in ("wall_seconds.csv", "features.txt"):
        shutil.copy(root / name, target / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--finetune", type=Path, default=Path("docs/results"))
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--copy", type=Path)
    args = parser.parse_args()
    table, summary = curves_table(args.root)
    print("## Learning curves\n\n" + table)
    print(
        "\n## How predictions see an image: view-averaged features, every view, or as is\n\n"
        + scoring_table(args.root)
    )
    print("\n## Full supervision\n\n" + full_table(args.root))
    print("\n## Speed\n\n" + speed_table(args.root))
    print("\n## Frozen vs fine-tuned UniSAL at equal labels\n\n" + finetune_table(args.root, args.finetune))
    if args.plot:
        plot(summary, args.plot, full_accuracy(args.root))
    if args.copy:
        copy_raw(args.root, args.copy)


if __name__ == "__main__":
    main()
