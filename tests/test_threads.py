"""Issue 8, item 14: threads chosen from the free cores, passive OpenMP waits, --threads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from unisal import threads
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
        assert configure_threads(1, log=lambda _: None) == 1 and torch.get_num_threads() == 1
        monkeypatch.setattr(threads, "_chosen", None)
        monkeypatch.setattr(threads, "busy_cores", lambda interval=0.25: 0.0)
        first = configure_threads(None, log=lambda _: None)
        monkeypatch.setattr(threads, "busy_cores", lambda interval=0.25: 99.0)  # our own work later
        assert configure_threads(None, log=lambda _: None) == first  # not re-decided
    finally:
        torch.set_num_threads(before)


def test_the_command_line_asks_openmp_to_wait_passively_unless_told_otherwise():
    code = "import os, unisal.cli.main; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert (
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip()
        == "PASSIVE"
    )
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    assert (
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip()
        == "ACTIVE"
    )
