"""Shared by the memory benchmarks: the process's anonymous resident memory, its peak during a
call, and the commit measured (run as ``python benchmarks/<script>.py``, which puts this folder on
``sys.path``).

Anonymous memory (``RssAnon``) leaves out file-backed pages, so a memory-mapped input is not
counted: the figure is what the code holds above its inputs. Children should run with
``CHILD_ENV``: glibc's sliding mmap threshold otherwise moves large buffers onto the heap after
the first free, where freed batches linger as fragments.
"""

from __future__ import annotations

import ctypes
import gc
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "OMP_WAIT_POLICY": "PASSIVE"}
T = TypeVar("T")


def anonymous_bytes() -> int:
    """This process's anonymous resident memory (RssAnon of /proc/self/status), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status (Linux only)")


def peak_above(call: Callable[[], T], *, every: float = 0.002) -> tuple[T, float, float]:
    """Run ``call``: its result, seconds, and the peak anonymous MB above the figure just before
    it (after a garbage collection and ``malloc_trim``), sampled every ``every`` seconds."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = anonymous_bytes()
    peak = [before]
    running = threading.Event()
    running.set()

    def sample() -> None:
        while running.is_set():
            peak[0] = max(peak[0], anonymous_bytes())
            time.sleep(every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        result = call()
    finally:
        seconds = time.perf_counter() - start
        peak[0] = max(peak[0], anonymous_bytes())
        running.clear()
        sampler.join()
    return result, seconds, (peak[0] - before) / 2**20


def commit() -> str:
    """The short hash of HEAD, or '' outside a git checkout."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
