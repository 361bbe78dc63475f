"""Threads chosen from the free cores (or --threads, OMP_NUM_THREADS, a run's record), OpenMP's
wait policy from the load at start, and freed memory kept for reuse."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from unisal import threads
from unisal.events import collect, subscribed
from unisal.threads import choose_threads, configure_threads


def test_choose_threads_known_answers():
    assert choose_threads(None, cores=2, busy=0.1) == (2, None)  # an idle machine: every core
    assert choose_threads(None, cores=2, busy=1.2) == (1, None)  # one core busy elsewhere: stay off it
    n, warning = choose_threads(None, cores=2, busy=2.0)
    assert n == 1 and warning is not None and "the machine is busy (load 2.0 on 2 cores)" in warning
    n, warning = choose_threads(3, cores=2, busy=0.0)
    assert n == 3 and warning is not None and "oversubscribed" in warning
    assert choose_threads(1, cores=2, busy=1.0) == (1, None)
    assert choose_threads(None, cores=16, busy=3.4) == (13, None)


def test_busy_cores_is_within_the_machine():
    assert 0.0 <= threads.busy_cores(0.05) <= (os.cpu_count() or 1) + 0.5


def test_configure_threads_sets_torch_and_decides_once(monkeypatch: pytest.MonkeyPatch):
    import torch

    before = torch.get_num_threads()
    try:
        assert configure_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setattr(threads, "_chosen", None)
        monkeypatch.setattr(threads, "busy_cores", lambda interval=0.25: 0.0)
        first = configure_threads(None)
        monkeypatch.setattr(threads, "busy_cores", lambda interval=0.25: 99.0)  # our own work later
        assert configure_threads(None) == first  # not re-decided
    finally:
        torch.set_num_threads(before)


def test_openmp_waits_passively_only_on_a_busy_machine():
    assert threads.openmp_wait_policy(busy=1.2) == "PASSIVE"
    assert threads.openmp_wait_policy(busy=0.1) is None  # OpenMP's default: a bounded spin


def test_the_command_line_leaves_a_users_openmp_policy_alone():
    code = "import os, unisal.cli.main; print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    for setting, expected in (
        ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE None"),
        ({"GOMP_SPINCOUNT": "1000"}, "None 1000"),
    ):
        out = subprocess.run([sys.executable, "-c", code], env=env | setting, capture_output=True, text=True)
        assert out.stdout.strip() == expected


def test_freed_memory_is_kept_unless_the_user_set_it(monkeypatch: pytest.MonkeyPatch):
    import platform

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert threads.keep_freed_memory() is True
    monkeypatch.setenv("UNISAL_KEEP_FREED_MEMORY", "0")
    assert threads.keep_freed_memory() is False
    monkeypatch.delenv("UNISAL_KEEP_FREED_MEMORY")
    monkeypatch.setenv("MALLOC_TOP_PAD_", "131072")
    assert threads.keep_freed_memory() is False


def test_omp_num_threads_is_the_users_choice(monkeypatch: pytest.MonkeyPatch):
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(threads, "_chosen", None)
        monkeypatch.setattr(threads, "busy_cores", lambda interval=0.25: 0.0)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert configure_threads(None) == 1 == torch.get_num_threads()
        assert configure_threads(2) == 2  # --threads wins over the environment
        monkeypatch.setenv("OMP_NUM_THREADS", "4,2")  # nested levels: not one number, so not used
        assert threads.environment_threads() is None
    finally:
        torch.set_num_threads(before)


def test_a_resumed_run_keeps_its_threads_unless_told_otherwise():
    said: list[str] = []
    with subscribed(collect(said)):
        assert threads.resumed_threads(None, 2) == 2 and not said
        assert threads.resumed_threads(2, 2) == 2 and not said
        assert threads.resumed_threads(1, 2) == 1
        assert "used 2 threads and this one 1: results may differ" in said[0]
        assert threads.resumed_threads(None, None) is None  # a run written before threads were recorded
        assert threads.resumed_threads(3, "two") == 3


def test_a_busy_competitor_is_seen_in_the_run_queue():
    from tests.conftest import burning_cpu

    with burning_cpu(30):
        time.sleep(0.5)
        assert threads.runnable_others() >= 1
