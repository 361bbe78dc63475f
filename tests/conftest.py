"""Shared fixtures: the real sample tiles in ../shared/data and tiny synthetic image folders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# One thread count for the whole suite and the commands it starts, whatever the machine's load:
# the command line would otherwise choose from the load when each process starts, and runs
# compared with each other must sum in the same order. `OMP_NUM_THREADS=1 pytest` runs at one.
os.environ.setdefault("OMP_NUM_THREADS", str(min(2, os.cpu_count() or 1)))

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT / ".." / "shared" / "data"

# Distinct, saturated colours so that synthetic classes are trivially separable.
_PALETTE = [
    (220, 40, 40),
    (40, 180, 60),
    (40, 70, 220),
    (230, 200, 40),
    (180, 60, 200),
    (40, 200, 210),
    (240, 140, 30),
    (120, 120, 120),
]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only folder of real tiles; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not found: real sample tiles are needed for this test")
    return SHARED_DATA.resolve()


@pytest.fixture(scope="session")
def lung_dir(shared_data: Path) -> Path:
    """LC25000 lung: 3 class folders of 5,000 JPEGs and a ``groups.csv``."""
    path = shared_data / "lc25000-lung"
    if not path.is_dir():
        pytest.skip(f"{path} not found: real sample tiles are needed for this test")
    return path


@pytest.fixture(scope="session")
def crc_samples(shared_data: Path) -> Path:
    """Real colorectal tiles: kather2016, crc-val-he-7k, nct-crc-he-100k in original layouts."""
    path = shared_data / "crc-samples"
    if not path.is_dir():
        pytest.skip(f"{path} not found: real sample tiles are needed for this test")
    return path


def synthetic_tile(class_index: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 (size, size, 3): a class colour from a fixed palette plus seeded noise."""
    base = np.asarray(_PALETTE[class_index % len(_PALETTE)], np.int16)
    noise = rng.integers(-20, 21, size=(size, size, 3), dtype=np.int16)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.fixture
def make_image_folder(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing a class-folder layout ``root/<class>/<class>_<i>.<fmt>`` under tmp_path.

    ``make_image_folder(classes={"A": 4, "B": 4}, size=32, fmt="png", seed=0)`` returns the root.
    Each call gets its own root (``name`` overrides it); images of a class share its colour.
    """
    calls = iter(range(1_000_000))

    def make(
        classes: dict[str, int] | None = None,
        size: int = 32,
        fmt: str = "png",
        seed: int = 0,
        name: str | None = None,
    ) -> Path:
        classes = {"A": 4, "B": 4} if classes is None else classes
        root = tmp_path / (name or f"images{next(calls)}")
        rng = np.random.default_rng(seed)
        for k, (class_name, count) in enumerate(classes.items()):
            folder = root / class_name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(synthetic_tile(k, size, rng)).save(folder / f"{class_name}_{i}.{fmt}")
        return root

    return make


def sigkill_when(args: list[str], ready: Callable[[], bool], timeout: float = 300) -> None:
    """Start the command ``args``; SIGKILL it as soon as ``ready()`` holds (checked every 50 ms).

    Fails if the command ends by itself first (it printed why) or ``ready`` never holds.
    """
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    try:
        while not ready():
            assert time.time() < deadline, f"{args[:4]} never reached the point to kill it at"
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL


@contextmanager
def burning_cpu(seconds: float = 600) -> Iterator[None]:
    """Another process keeps one core busy (a Python loop, ending by itself after ``seconds``)."""
    code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"
    process = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(0.3)  # running before the work under test starts
        yield
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def device_node(tmp_path: Path) -> Path:
    """A character device of the test's own to aim outputs at: a null device node made in
    ``tmp_path``, never the system's /dev/null, which a regression would replace when the tests
    run as root."""
    import stat

    path = tmp_path / "null-device"
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError:
        pytest.skip("cannot make a device node here (not root); the FIFO tests cover other non-regular files")
    return path


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray instance of two CPUs for the module's tests (no network, no dashboard)."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'unisal[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()
