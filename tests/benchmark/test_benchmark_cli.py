"""``unisal benchmark`` end to end on synthetic tiles (never skips): every arm, resume, refusals."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from unisal.cli.main import cli

SMALL = ["--image-size", "32", "--epochs", "2", "--steps-per-epoch", "2", "--batch-size", "8"]
SMALL += ["--initial", "6", "--budget", "3", "--rounds", "2"]


@pytest.fixture
def tiles(make_image_folder) -> Path:
    return make_image_folder(classes={"red": 14, "green": 14, "blue": 14}, size=32)


def bench(root: Path, tmp_path: Path, out: str, *extra: str) -> tuple[int, str]:
    args = [
        "benchmark",
        "--data",
        str(root),
        "--cache-dir",
        str(tmp_path / "cache"),
        *SMALL,
        "--out",
        str(tmp_path / out),
    ]
    result = CliRunner().invoke(cli, [*args, *extra])
    return result.exit_code, result.output


def test_a_benchmark_always_shows_its_caches_progress_and_its_runs_bars_on_request(
    tiles: Path, tmp_path: Path
) -> None:
    """The first feature cache may take half an hour: its bar shows without --progress; the bars
    inside each run (training, scoring) and the per-round lines only with it / never."""
    base = ["benchmark", "--data", str(tiles), "--cache-dir", str(tmp_path / "cache"), *SMALL, "--strategies", "random",
            "--seeds", "0", "--no-reference"]  # fmt: skip
    plain = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    assert "decoding images to 32px" in plain.stderr and "features" in plain.stderr
    assert "training" not in plain.stderr and "round 1:" not in plain.output
    shown = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "shown"), "--progress"])
    assert shown.exit_code == 0, shown.output
    assert "co-training" in shown.stderr and "round 1:" not in shown.output


def rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "results.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


# One strategy of each kind of input (none, predictions, MC dropout, gradient embeddings, backbone
# features, both networks): every registered strategy meets the selection contract in
# tests/query, so running all thirteen end to end here would test the same code again.
KINDS = ["random", "entropy", "bald", "badge", "kmeans", "unisal"]


def test_a_benchmark_with_each_kind_of_strategy_runs_and_the_report_follows(
    tiles: Path, tmp_path: Path
) -> None:
    arms = ",".join([*KINDS, "unisal@frozen:supervised"])
    code, output = bench(
        tiles, tmp_path, "all", "--strategies", arms, "--seeds", "0-1", "--reference-passes", "3"
    )
    assert code == 0, output
    n_arms = len(KINDS) + 1
    assert f"{n_arms} arms x 2 seeds = {2 * n_arms} runs + 2 full-supervision references" in output
    assert f"[{2 * n_arms + 2}/{2 * n_arms + 2}]" in output and "left)" in output
    out = tmp_path / "all"
    table = rows(out)
    per_arm = Counter(r["arm"] for r in table)
    assert per_arm["full supervision"] == 2
    assert all(per_arm[name] == 2 * 3 for name in KINDS)  # 2 seeds x 3 trained rounds
    assert per_arm["unisal (frozen:supervised)"] == 6
    # paired: every arm of a seed starts from the same labelled set, so round 0 of the co-trained
    # arms is the same model and the same accuracy
    for seed in ("0", "1"):
        first = {
            r["accuracy"]
            for r in table
            if r["seed"] == seed and r["round"] == "0" and r["learner"] == "frozen"
        }
        assert len(first) == 1
    assert {r["n_candidates"] for r in table if r["arm"] == "unisal" and r["round"] != "2"} != {""}
    reference = json.loads((out / "reference" / "seed0" / "metrics.json").read_text())
    full_seed0 = [r for r in table if r["arm"] == "full supervision" and r["seed"] == "0"]
    assert reference["passes"] == 3 and reference["n_labeled"] == int(full_seed0[0]["n_labeled"])
    summary = (out / "summary.md").read_text()
    for heading in ("Test accuracy", "macro-F1", "AUBC", "full-supervision accuracy", "penalty matrix"):
        assert heading in summary
    assert "Command: `unisal benchmark --data" in summary
    assert (out / "curves.png").stat().st_size > 10_000 and (out / "curves.svg").is_file()
    queries = (out / "runs" / "entropy@frozen" / "seed0" / "queries" / "round_1.csv").read_text().splitlines()
    assert queries[0] == "path,label,reason,score" and len(queries) == 4 and "entropy" in queries[1]

    (out / "summary.md").unlink()
    (out / "curves.png").unlink()
    result = CliRunner().invoke(cli, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "summary.md").read_text() == summary and (out / "curves.png").is_file()


def test_a_second_call_skips_finished_runs_and_adds_seeds(tiles: Path, tmp_path: Path) -> None:
    code, output = bench(tiles, tmp_path, "grow", "--strategies", "random,unisal", "--seeds", "0")
    assert code == 0, output
    before = (tmp_path / "grow" / "runs" / "unisal@frozen" / "seed0" / "state.json").stat().st_mtime_ns
    code, output = bench(tiles, tmp_path, "grow", "--strategies", "random,unisal", "--seeds", "0-1")
    assert code == 0, output
    assert "3 already done" in output and "[6/6]" in output
    assert (
        tmp_path / "grow" / "runs" / "unisal@frozen" / "seed0" / "state.json"
    ).stat().st_mtime_ns == before
    assert sorted({r["seed"] for r in rows(tmp_path / "grow")}) == ["0", "1"]


def test_strategy_parameters_reach_their_runs(tiles: Path, tmp_path: Path) -> None:
    code, output = bench(
        tiles,
        tmp_path,
        "p",
        "--strategies",
        "bald,coreset",
        "--seeds",
        "0",
        "--no-reference",
        "--param",
        "bald.mc_samples=3",
        "--param",
        "coreset.space=features",
    )
    assert code == 0, output
    import yaml

    runs = tmp_path / "p" / "runs"
    assert yaml.safe_load((runs / "bald@frozen" / "seed0" / "config.yaml").read_text())["query"][
        "params"
    ] == {"mc_samples": 3}
    assert yaml.safe_load((runs / "coreset@frozen" / "seed0" / "config.yaml").read_text())["query"][
        "params"
    ] == {"space": "features"}
    settings = (tmp_path / "p" / "settings.md").read_text()  # what the summary says was run
    assert "validation none (a fixed schedule, the last epoch kept)" in settings
    assert "Full supervision: not run (--no-reference)." in settings


def test_refusals_name_the_problem_and_write_nothing(tiles: Path, tmp_path: Path) -> None:
    code, output = bench(tiles, tmp_path, "x", "--strategies", "random,entropyy")
    assert code != 0 and "unknown strategy 'entropyy'" in output and not (tmp_path / "x").exists()
    code, output = bench(tiles, tmp_path, "x", "--strategies", "unisal@frozen:supervised", "--networks", "1")
    assert code != 0 and "no such option" in output.lower()
    code, output = bench(tiles, tmp_path, "x", "--strategies", "bald", "--seeds", "3-1")
    assert code != 0 and "--seeds '3-1'" in output and not (tmp_path / "x").exists()
    code, output = bench(tiles, tmp_path, "x", "--strategies", "random", "--learners", "frozen:semi")
    assert code != 0 and "the mode must be one of" in output
    for param, message in (
        ("bald.mc_samples=0", "parameter 'mc_samples' must be > 0"),
        ("entropy.mc_samples=3", "strategy 'entropy' has no parameter 'mc_samples'"),
        ("typiclust.knn=5", "--param names typiclust, which is not among --strategies"),
        ("mc_samples=3", "expected STRATEGY.KEY=VALUE"),
    ):
        code, output = bench(tiles, tmp_path, "x", "--strategies", "bald,entropy", "--param", param)
        assert code != 0 and message in output and not (tmp_path / "x").exists(), output
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    code, output = bench(tiles, tmp_path, "busy", "--strategies", "random", "--seeds", "0")
    assert code != 0 and "is not empty and holds no benchmark" in output
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["notes.txt"]
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "benchmark.yaml").write_text("keep")  # a file with the name, not ours
    code, output = bench(tiles, tmp_path, "theirs", "--strategies", "random", "--seeds", "0")
    assert code != 0 and "holds a benchmark.yaml that unisal did not write" in output, output
    assert (tmp_path / "theirs" / "benchmark.yaml").read_text() == "keep"
    code, output = bench(tiles, tmp_path, "done", "--strategies", "random", "--seeds", "0", "--no-reference")
    assert code == 0, output
    code, output = bench(tiles, tmp_path, "done", "--strategies", "random", "--seeds", "0", "--lr", "0.01")
    assert code != 0 and "settings differ" in output
