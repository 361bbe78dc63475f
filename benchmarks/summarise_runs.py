"""Turn AL run folders and supervised references into a markdown table and a learning-curve plot.

    python benchmarks/summarise_runs.py runs/lung --plot docs/lc25000-lung-curve.png

Reads ``<root>/<name>/rounds.csv`` for every AL run and ``<root>/<name>/metrics.json`` for every
supervised reference, and prints the table recorded in docs/.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from unisal.run_folder import read_round_rows


def read_runs(root: Path) -> tuple[dict[str, list[dict[str, str]]], dict[str, dict]]:
    curves, references = {}, {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if (folder / "rounds.csv").is_file():
            curves[folder.name] = read_round_rows(folder)
        elif (folder / "metrics.json").is_file():
            references[folder.name] = json.loads((folder / "metrics.json").read_text())
    return curves, references


def markdown(curves: dict[str, list[dict[str, str]]], references: dict[str, dict]) -> str:
    names = list(curves)
    lines = [
        "| round | labels | " + " | ".join(f"{n} acc | {n} macro-F1" for n in names) + " |",
        "|---|---|" + "---|---|" * len(names),
    ]
    n_rounds = max(len(c) for c in curves.values())
    for r in range(n_rounds):
        cells = []
        labels = ""
        for n in names:
            row = curves[n][r] if r < len(curves[n]) else None
            labels = labels or (row["n_labeled"] if row else "")
            cells += [f"{float(row['accuracy']):.4f}", f"{float(row['macro_f1']):.4f}"] if row else ["", ""]
        lines.append(f"| {r} | {labels} | " + " | ".join(cells) + " |")
    if references:
        lines += [
            "",
            "| supervised reference | labels | accuracy | macro-F1 | train s |",
            "|---|---|---|---|---|",
        ]
        for n, m in references.items():
            lines.append(
                f"| {n} | {m['n_labeled']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['train_seconds']:.0f} |"
            )
    extra = ["", "| run | round | n_candidates | train s | select s |", "|---|---|---|---|---|"]
    for n in names:
        extra += [
            f"| {n} | {row['round']} | {row['n_candidates']} | {row['train_seconds']} | {row['select_seconds']} |"
            for row in curves[n]
        ]
    return "\n".join(lines + extra)


def plot(curves: dict[str, list[dict[str, str]]], references: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rows in curves.items():
        ax.plot(
            [int(r["n_labeled"]) for r in rows], [float(r["accuracy"]) for r in rows], marker="o", label=name
        )
    for (name, m), style in zip(references.items(), ["--", ":", "-."], strict=False):
        ax.axhline(m["accuracy"], linestyle=style, color="grey", label=f"{name} ({m['n_labeled']} labels)")
    ax.set_xlabel("labelled images")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    curves, references = read_runs(args.root)
    if not curves:
        raise SystemExit(f"no AL runs (rounds.csv) under {args.root}")
    print(markdown(curves, references))
    if args.plot:
        plot(curves, references, args.plot)
        print(f"\nplot written to {args.plot}")


if __name__ == "__main__":
    main()
