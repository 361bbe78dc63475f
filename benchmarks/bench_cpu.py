"""CPU speed of the feature cache and of a frozen simulation, per setting, alone and beside a competitor.

    .venv/bin/python benchmarks/bench_cpu.py --work DIR [--per-class 200] [--parts features,simulation]

Data: a real LC25000-lung subset (``--per-class`` images of each class, whole near-duplicate
groups; 112 px, d8 views, EfficientNet-Lite0). Every measurement runs the command line in a
fresh process, as a user would.

Feature extraction (``unisal features``, the cache built from scratch each time; images/s is
the extraction alone, from the cache's record), per setting:
  torch, old: PyTorch, OpenMP waiting passively, glibc's default memory (what 0.1.0 did);
  torch, passive: the same with freed memory kept for reuse (``unisal.threads.keep_freed_memory``);
  torch, active: the same with OpenMP spin-waiting;
  openvino: the default now (``--feature-engine auto``: OpenVINO on the CPU).
Simulation (``unisal simulate``, cpu preset, 30 + 10 x 30 labels, seed 0, the subset's cache
built beforehand; wall seconds of the whole command), per OpenMP setting:
  active (OMP_WAIT_POLICY=ACTIVE), passive (=PASSIVE), default (unset: OpenMP's bounded spin),
  and auto, the default now: passive where the machine is busy at start, else OpenMP's default;
  one-thread: auto with ``--threads 1`` (the floor for a run that leaves a core to another).
Scenarios: alone; with one busy competitor started before (a PyTorch matrix-product loop with
PyTorch's defaults, as a second run would be); for the simulation also with the competitor
started 2 s after the run (it cannot see it coming). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.lung_subset import write_lung_subset  # noqa: E402
from unisal.threads import busy_cores  # noqa: E402

COMPETITOR = """
import torch
a = torch.randn(600, 600)
while True:
    a = (a @ a).clamp_(-1, 1)
"""
CLEAN = (
    "OMP_WAIT_POLICY",
    "OMP_NUM_THREADS",
    "GOMP_SPINCOUNT",
    "MALLOC_TOP_PAD_",
    "UNISAL_KEEP_FREED_MEMORY",
)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def unisal(
    args: list[str], env: dict[str, str], competitor: str | None, competitor_env: dict[str, str]
) -> tuple[float, str]:
    """Wall seconds and stdout of ``unisal ARGS``; ``competitor``: None, 'before' or 'after'
    (always with ``competitor_env``: the same competitor whatever the setting measured)."""
    busy = busy_cores(0.5)
    if busy > 0.3:  # something else runs: this would measure it too
        sys.exit(
            f"the machine is busy ({busy:.1f} cores) before `unisal {args[0]}`; measure on an idle machine"
        )
    other = None
    if competitor == "before":
        other = subprocess.Popen([sys.executable, "-c", COMPETITOR], env=competitor_env)
        time.sleep(3.0)
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "unisal", *args], env=env, stdout=subprocess.PIPE, text=True
    )
    if competitor == "after":
        time.sleep(2.0)
        other = subprocess.Popen([sys.executable, "-c", COMPETITOR], env=competitor_env)
    try:
        out, _ = process.communicate()
    finally:
        if other is not None:
            other.kill()
            other.wait()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        sys.exit(f"unisal {' '.join(args)} failed:\n{out}")
    return round(wall, 1), out


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a killed benchmark kills its competitor too
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--parts", default="features,simulation")
    parser.add_argument("--features-settings", default="torch-old,torch-passive,torch-active,openvino")
    parser.add_argument("--simulation-settings", default="active,passive,auto")
    parser.add_argument("--repeats", type=int, default=1, help="simulation runs per setting and scenario")
    args = parser.parse_args()
    data_csv, groups_csv = write_lung_subset(args.work / "data", per_class=args.per_class)
    data = ["--data", str(data_csv), "--groups", str(groups_csv), "--format", "csv"]
    base = {k: v for k, v in os.environ.items() if k not in CLEAN}
    result: dict[str, object] = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores",
        "images": 3 * args.per_class,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
    }
    if "features" in args.parts:
        settings = {
            "torch-old": ({"OMP_WAIT_POLICY": "PASSIVE", "UNISAL_KEEP_FREED_MEMORY": "0"}, "torch"),
            "torch-passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, "torch"),
            "torch-active": ({"OMP_WAIT_POLICY": "ACTIVE"}, "torch"),
            "openvino": ({}, "auto"),
        }
        features: dict[str, dict[str, object]] = {}
        for name in args.features_settings.split(","):
            env, engine = settings[name]
            for scenario in ("alone", "before"):
                cache = args.work / "cache-features"
                shutil.rmtree(cache, ignore_errors=True)
                wall, out = unisal(
                    ["features", *data, "--cache-dir", str(cache), "--feature-engine", engine, "--quiet"],
                    base | env,
                    None if scenario == "alone" else scenario,
                    base,
                )
                info = json.loads(next((cache / "features").glob("*/complete.json")).read_text())
                features.setdefault(name, {})[scenario] = {
                    "images_per_second": info["images_per_second"],
                    "extraction_seconds": info["seconds"],
                    "command_seconds": wall,
                    "engine": info.get("engine"),
                    "threads": info.get("threads"),
                }
                print(name, scenario, features[name][scenario], file=sys.stderr, flush=True)
        result["features"] = features
    if "simulation" in args.parts:
        cache = args.work / "cache-simulation"
        unisal(["features", *data, "--cache-dir", str(cache), "--quiet"], base, None, base)
        policies = {"active": {"OMP_WAIT_POLICY": "ACTIVE"}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}}
        walls: dict[str, dict[str, list[float]]] = {}
        for repeat in range(args.repeats):
            for name in args.simulation_settings.split(","):
                for scenario in ("alone", "before", "after"):
                    if scenario == "after" and name in ("active", "one-thread"):
                        continue  # active: measured before this project chose passive waiting (4x slower)
                    out = args.work / "runs" / f"{name}-{scenario}"
                    shutil.rmtree(out, ignore_errors=True)
                    env = base | policies.get(name, {})
                    if name == "default":  # OpenMP's own default, stated so that unisal keeps it
                        env["GOMP_SPINCOUNT"] = "300000"
                    threads = ["--threads", "1"] if name == "one-thread" else []
                    wall, _ = unisal(
                        ["simulate", *data, "--cache-dir", str(cache), "--preset", "cpu", "--seed", "0",
                         "--initial", "30", "--budget", "30", "--rounds", "10", "--quiet", *threads,
                         "--out", str(out)],
                        env,
                        None if scenario == "alone" else scenario,
                        base,
                    )  # fmt: skip
                    walls.setdefault(name, {}).setdefault(scenario, []).append(wall)
                    print(name, scenario, repeat, wall, file=sys.stderr, flush=True)
        result["simulation_seconds"] = {  # one number per cell, or each repeat's
            name: {k: v[0] if args.repeats == 1 else v for k, v in cells.items()}
            for name, cells in walls.items()
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
