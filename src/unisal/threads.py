"""CPU threads on a shared machine.

Two PyTorch processes on two cores, each with two OpenMP threads that spin while they wait,
slow each other down many times over. So the command line asks OpenMP to wait passively
(unless the user chose a policy), and the number of threads is chosen from the cores that are
free: ``--threads N`` when given, else the cores that other processes leave idle (sampled from
/proc/stat), at least one, with a warning when the machine is already busy.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any


def passive_openmp() -> None:
    """Make OpenMP threads sleep instead of spin while waiting; must run before torch is imported."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as handle:
        fields = [float(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_cores(interval: float = 0.25) -> float:
    """Cores that other processes keep busy right now: CPU use sampled over ``interval`` seconds
    while this process sleeps (Linux), else the 1-minute load average (0 where unknown)."""
    try:
        busy0, total0 = _cpu_times()
        time.sleep(interval)
        busy1, total1 = _cpu_times()
        return (os.cpu_count() or 1) * (busy1 - busy0) / max(total1 - total0, 1e-9)
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except OSError:
            return 0.0


def choose_threads(requested: int | None, cores: int, busy: float) -> tuple[int, str | None]:
    """Threads to use and, when the machine is oversubscribed, a warning.

    Args:
        requested: ``--threads`` (None: choose).
        cores: CPU cores of the machine.
        busy: cores other processes keep busy (the load average).
    """
    free = max(1, cores - round(busy))
    if requested is not None:
        warning = (
            f"warning: {requested} threads on {cores} cores with a load of {busy:.1f}: the machine is "
            "oversubscribed and every process slows down"
            if requested + round(busy) > cores
            else None
        )
        return requested, warning
    if round(busy) >= cores:
        return 1, (
            f"warning: the machine is busy (load {busy:.1f} on {cores} cores): using 1 thread; "
            "pass --threads to choose"
        )
    return free, None


_chosen: int | None = None  # decided once per process: later, our own work would count as "busy"


def configure_threads(requested: int | None, log: Callable[[str], Any] = print) -> int:
    """Set PyTorch's intra-op threads (see :func:`choose_threads`) and return the number. Without
    ``requested`` the choice is made once per process and kept."""
    global _chosen
    import torch

    if requested is None and _chosen is not None:
        return _chosen
    n, warning = choose_threads(requested, os.cpu_count() or 1, busy_cores())
    if warning:
        log(warning)
    torch.set_num_threads(n)
    if requested is None:
        _chosen = n
    return n
