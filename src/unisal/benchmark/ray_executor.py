"""``unisal benchmark --executor ray``: each run (arm x seed) and each full-supervision reference
is one Ray task with its own resources (``--threads`` CPUs, one GPU where the run uses CUDA).

The driver checks the settings, reads and splits the data once per seed (so that the decoded-
image cache exists before any task starts, and the folder is written only once the data are
readable), then submits every unfinished run. Each task reads the data again (a cache hit),
runs an ordinary run folder exactly as ``--executor local`` does (``Benchmark.run_job``) and
returns; the driver writes ``results.csv`` and a progress line as each one ends. Run folders and
caches must lie on a file system every worker sees (one machine: always).

Resumable as the local path: a finished run is skipped, a half-done one resumes from its last
finished round. A task whose worker dies (killed, out of memory, its node lost) is retried by
Ray on another worker (``MAX_RETRIES``) and resumes from the folder; an exception of the run
itself is not retried, and its message is the benchmark's error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from unisal.errors import RunError, UnisalError

if TYPE_CHECKING:
    from unisal.benchmark.runner import Benchmark, BenchmarkPlan
    from unisal.benchmark.spec import Arm

MAX_RETRIES = 3  # retries of a task whose worker died (not of one whose run raised)


@dataclass(frozen=True)
class Job:
    """One task: a run (``arm`` set) or the reference of ``seed`` (``arm`` None)."""

    seed: int
    arm: Arm | None = None


def execute(plan: BenchmarkPlan, job: Job) -> float:
    """Run ``job`` of ``plan`` in this process (a Ray worker): its seconds."""
    from unisal.benchmark.runner import Benchmark
    from unisal.data.prepare import prepare_data
    from unisal.threads import configure_threads

    start = time.perf_counter()
    bench = Benchmark(plan)
    configure_threads(plan.base.threads)
    bench.run_job(job, prepare_data(plan.base.data, job.seed))
    return time.perf_counter() - start


def run_on_ray(bench: Benchmark, jobs: list[Job], *, address: str | None, done: int, total: int) -> None:
    """Run ``jobs`` as Ray tasks (connecting to ``address``, or reusing an initialised Ray, or
    starting a local instance), writing results as each ends."""
    from unisal.distributed import ray_session

    plan = bench.plan
    with ray_session(address) as ray:
        gpus = 1 if bench.device.type == "cuda" else 0
        task = ray.remote(execute).options(
            num_cpus=plan.base.threads or 1, num_gpus=gpus, max_retries=MAX_RETRIES, retry_exceptions=False
        )
        plan_ref = ray.put(plan)
        pending = {task.remote(plan_ref, job): job for job in jobs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                job = pending.pop(ref)
                seconds = _result(ray, ref, job)
                done += 1
                bench.finished_job(job, seconds, done, total)
                bench.write_results()


def _result(ray: Any, ref: Any, job: Job) -> float:
    """The task's seconds; its own error (a UnisalError) as the benchmark's, else a RunError."""
    try:
        return float(ray.get(ref))
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, UnisalError):
            raise cause from None
        what = f"seed {job.seed}" + (f", {job.arm.key}" if job.arm else ", the reference")
        raise RunError(
            f"a Ray task failed ({what}): {str(cause or exc).strip().splitlines()[-1][:200]}"
        ) from exc
    except ray.exceptions.RayError as exc:
        raise RunError(f"Ray lost a task (seed {job.seed}) after {MAX_RETRIES} retries: {exc}") from exc
