"""Same settings, same threads, same result: with another process burning the CPU or not, and
after a resume, which keeps the threads the run recorded (synthetic tiles; never skips)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import burning_cpu
from unisal.config import RunConfig, build_config
from unisal.events import collect, subscribed
from unisal.loop import ActiveLearningRun


def config(data: Path, cache: Path, out: Path, threads: int | None, rounds: int = 2) -> RunConfig:
    return build_config(
        "cpu",
        {
            "data": {"path": str(data), "image_size": 32, "cache_dir": str(cache)},
            "train": {"epochs": 2, "steps_per_epoch": 3, "batch_size": 8},
            "query": {"budget": 3},
            "initial": 6,
            "rounds": rounds,
            "threads": threads,
            "out": str(out),
        },
    )


def outputs(out: Path) -> dict[str, bytes]:
    """Every file a run writes that must not depend on the machine's load: bytes, by name."""
    names = ["rounds.csv", "splits.csv", *(f"queries/round_{k}.csv" for k in (1, 2))]
    names += [f"history/round_{k}.csv" for k in range(3)] + [f"confusion/round_{k}.csv" for k in range(3)]
    return {name: (out / name).read_bytes() for name in names}


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """Runs set PyTorch's threads for the process; the next test gets the suite's number back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_same_threads_give_byte_identical_outputs_under_load(make_image_folder, tmp_path: Path) -> None:
    data = make_image_folder(classes={"red": 10, "green": 10, "blue": 10}, size=32)
    cache = tmp_path / "cache"
    ActiveLearningRun(config(data, cache, tmp_path / "alone", 2)).run()
    with burning_cpu():
        ActiveLearningRun(config(data, cache, tmp_path / "busy", 2)).run()
    assert outputs(tmp_path / "busy") == outputs(tmp_path / "alone")
    assert yaml.safe_load((tmp_path / "alone" / "config.yaml").read_text())["threads"] == 2
    assert "train_seconds" in (tmp_path / "alone" / "timings.csv").read_text().splitlines()[0]


def test_a_resumed_run_uses_the_threads_it_recorded(make_image_folder, tmp_path: Path) -> None:
    data = make_image_folder(classes={"red": 10, "green": 10}, size=32)
    cache, out = tmp_path / "cache", tmp_path / "run"
    ActiveLearningRun(config(data, cache, out, 1, rounds=1)).run()
    assert yaml.safe_load((out / "config.yaml").read_text())["threads"] == 1
    said: list[str] = []
    with subscribed(collect(said)):
        ActiveLearningRun(config(data, cache, out, None), resume=True).run()
    assert torch.get_num_threads() == 1 and not [line for line in said if "results may differ" in line]
    assert yaml.safe_load((out / "config.yaml").read_text())["threads"] == 1
    with subscribed(collect(said)):
        ActiveLearningRun(config(data, cache, out, 2, rounds=3), resume=True).run()
    assert any("the run used 1 threads and this one 2: results may differ" in line for line in said)
