"""CPU threads and memory on a shared machine, set once per process before the work starts.

Two PyTorch processes on two cores, each with two OpenMP threads that spin while they wait,
slow each other down many times over; passive waiting costs an idle machine a little instead
(a sleeping thread wakes late). So the command line asks OpenMP to wait passively where the
machine is already busy when it starts, and keeps OpenMP's own default (spin a short while,
then sleep) where it is idle, unless the user chose a policy. The number of threads is chosen
from the cores that are free: ``--threads N`` or ``OMP_NUM_THREADS`` when given, else the cores
that other processes leave idle (sampled from /proc/stat), at least one, with a warning when the
machine is already busy.

Memory: glibc gives a freed block of the heap's top back to the kernel, and a tensor of a few
MB freed and allocated again on the next batch then costs a page fault for every 4 KB of it.
On this project's 2-core machine that was over a third of the feature extraction's CPU time,
in the kernel (docs/benchmarks.md). :func:`keep_freed_memory` asks glibc to keep 1 GB of freed
memory for reuse.
"""

from __future__ import annotations

import os
import time
from typing import Any

from unisal.events import message


def runnable_others(samples: int = 3, gap: float = 0.005) -> float:
    """Other tasks running or waiting for a core right now: the fewest of ``samples`` snapshots
    of /proc/loadavg's run queue, less this process (a short-lived command seen once is not
    a competitor); the 1-minute load average where that file is missing. Takes ~10 ms."""
    try:
        counts = []
        for k in range(samples):
            if k:
                time.sleep(gap)
            with open("/proc/loadavg") as handle:
                counts.append(int(handle.read().split()[3].split("/")[0]) - 1)
        return float(max(0, min(counts)))
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except OSError:
            return 0.0


def openmp_wait_policy(busy: float) -> str | None:
    """``PASSIVE`` where other processes keep at least half a core busy (``busy``), else None:
    OpenMP's default, a bounded spin before sleeping."""
    return "PASSIVE" if busy >= 0.5 else None


def configure_openmp() -> None:
    """Choose OpenMP's wait policy (see :func:`openmp_wait_policy`) unless the user set
    ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``; must run before torch is imported."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return
    policy = openmp_wait_policy(runnable_others())
    if policy:
        os.environ["OMP_WAIT_POLICY"] = policy


M_TOP_PAD = -2  # glibc's mallopt parameter: freed memory kept at the heap's top, and grown by


def keep_freed_memory(pad_bytes: int = 1 << 30) -> bool:
    """Ask glibc to keep ``pad_bytes`` of freed heap memory for reuse instead of returning it to
    the kernel; False where this is not glibc, or where the user set ``MALLOC_TOP_PAD_`` or
    ``UNISAL_KEEP_FREED_MEMORY=0`` (glibc's default, as measured in ``benchmarks/bench_cpu.py``)."""
    if "MALLOC_TOP_PAD_" in os.environ or os.environ.get("UNISAL_KEEP_FREED_MEMORY") == "0":
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_TOP_PAD, ctypes.c_int(pad_bytes)))


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


def environment_threads() -> int | None:
    """``OMP_NUM_THREADS`` when it names one positive number (the user's choice), else None."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def resumed_threads(requested: int | None, recorded: Any) -> int | None:
    """The threads a resumed run (or a reference trained on its labels) uses: those it recorded
    (``recorded``, from its config.yaml), unless the user asks for another number, which is
    said: sums over threads round differently, so results may differ in the last digits."""
    if not isinstance(recorded, int) or isinstance(recorded, bool) or recorded < 1:
        return requested
    if requested is None:
        return recorded
    if requested != recorded:
        message(
            f"note: the run used {recorded} threads and this one {requested}: results may differ from "
            "an uninterrupted run in the last digits (and, through them, in a query)"
        )
    return requested


def configure_threads(requested: int | None) -> int:
    """Set PyTorch's intra-op threads (see :func:`choose_threads`) and return the number.

    Without ``requested``, ``OMP_NUM_THREADS`` decides where set; else the choice is made from the
    machine's load once per process and kept.
    """
    global _chosen
    import torch

    requested = requested if requested is not None else environment_threads()
    if requested is None and _chosen is not None:
        return _chosen
    n, warning = choose_threads(requested, os.cpu_count() or 1, busy_cores())
    if warning:
        message(warning)
    torch.set_num_threads(n)
    if requested is None:
        _chosen = n
    return n
