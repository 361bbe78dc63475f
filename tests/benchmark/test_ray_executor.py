"""``unisal benchmark --executor ray`` on a local Ray instance (``ray.init(num_cpus=2)``, no
network): the same results.csv as the local executor at a fixed thread count, and runs
resumed from their last finished round."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from unisal.cli.main import cli
from unisal.run_folder import TIMING_COLUMNS

pytest.importorskip("ray", reason="ray is not installed (pip install 'unisal[ray]')")

SMALL = [
    "--image-size",
    "32",
    "--epochs",
    "2",
    "--steps-per-epoch",
    "2",
    "--batch-size",
    "8",
    "--threads",
    "1",
]
SMALL += ["--initial", "6", "--budget", "3", "--rounds", "2", "--strategies", "random,entropy,unisal"]
SMALL += ["--seeds", "0-1", "--reference-passes", "2"]


def table(folder: Path) -> list[dict[str, str]]:
    """results.csv without the columns that time the work (they differ from run to run)."""
    with (folder / "results.csv").open(newline="") as handle:
        return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS[1:]} for r in csv.DictReader(handle)]


def bench(tiles: Path, tmp_path: Path, out: str, *extra: str) -> str:
    args = ["benchmark", "--data", str(tiles), "--cache-dir", str(tmp_path / "cache"), *SMALL, "--out"]
    result = CliRunner().invoke(cli, [*args, str(tmp_path / out), *extra])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_benchmark_through_ray_gives_the_local_results_and_resumes(
    make_image_folder, tmp_path: Path, local_ray: None
) -> None:
    tiles = make_image_folder(classes={"red": 14, "green": 14, "blue": 14}, size=32)
    bench(tiles, tmp_path, "local")
    output = bench(tiles, tmp_path, "ray", "--executor", "ray")
    assert "3 arms x 2 seeds = 6 runs + 2 full-supervision references (on Ray)" in output
    assert "[8/8]" in output
    local, on_ray = table(tmp_path / "local"), table(tmp_path / "ray")
    assert len(local) == 3 * 2 * 3 + 2  # 3 rounds of each run, and the references
    assert on_ray == local
    assert (tmp_path / "ray" / "summary.md").is_file()
    # one more round: every run resumes from its last finished round, on Ray
    output = bench(tiles, tmp_path, "ray", "--executor", "ray", "--rounds", "3")
    assert "6 runs + 2 full-supervision references; 2 already done (on Ray)" in output
    grown = table(tmp_path / "ray")
    assert len(grown) == 3 * 2 * 4 + 2
    # the same rounds as before (round 2 now has a query after it: its n_candidates is filled)
    earlier = [r for r in grown if r["round"] != "3"]
    assert len(earlier) == len(local)
    assert all(
        {**a, "n_candidates": ""} == {**b, "n_candidates": ""} for a, b in zip(earlier, local, strict=True)
    )
