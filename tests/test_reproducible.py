"""Same command, same threads, same result: with another process burning the CPU or not, and
after a resume, which keeps the threads the run recorded (synthetic tiles; never skips)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import burning_cpu

FAST = ["--image-size", "32", "--epochs", "2", "--steps-per-epoch", "3", "--batch-size", "8"]


def simulate(data: Path, cache: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "unisal", "simulate", "--data", str(data), "--cache-dir", str(cache),
            "--initial", "6", "--budget", "3", "--rounds", "2", "--quiet", "--out", str(out), *FAST, *extra]  # fmt: skip
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def outputs(out: Path) -> dict[str, bytes]:
    """Every file a run writes that must not depend on the machine's load: bytes, by name."""
    names = ["rounds.csv", "splits.csv", *(f"queries/round_{k}.csv" for k in (1, 2))]
    names += [f"history/round_{k}.csv" for k in range(3)] + [f"confusion/round_{k}.csv" for k in range(3)]
    return {name: (out / name).read_bytes() for name in names}


def test_same_threads_give_byte_identical_outputs_under_load(make_image_folder, tmp_path: Path) -> None:
    data = make_image_folder(classes={"red": 10, "green": 10, "blue": 10}, size=32)
    cache = tmp_path / "cache"
    simulate(data, cache, tmp_path / "alone", "--threads", "2")
    with burning_cpu():
        simulate(data, cache, tmp_path / "busy", "--threads", "2")
    assert outputs(tmp_path / "busy") == outputs(tmp_path / "alone")
    assert yaml.safe_load((tmp_path / "alone" / "config.yaml").read_text())["threads"] == 2
    assert "train_seconds" in (tmp_path / "alone" / "timings.csv").read_text().splitlines()[0]


def test_a_resumed_run_uses_the_threads_it_recorded(make_image_folder, tmp_path: Path) -> None:
    data = make_image_folder(classes={"red": 10, "green": 10}, size=32)
    out = tmp_path / "run"
    simulate(data, tmp_path / "cache", out, "--threads", "1", "--rounds", "1")
    assert yaml.safe_load((out / "config.yaml").read_text())["threads"] == 1
    extended = simulate(data, tmp_path / "cache", out, "--resume")  # OMP_NUM_THREADS (the suite's) says 2
    assert "results may differ" not in extended.stdout + extended.stderr
    assert yaml.safe_load((out / "config.yaml").read_text())["threads"] == 1
    again = simulate(data, tmp_path / "cache", out, "--resume", "--rounds", "3", "--threads", "2")
    assert "the run used 1 threads and this one 2: results may differ" in again.stdout + again.stderr
