"""``unisal benchmark --executor ray``: each run (arm x seed) and each full-supervision reference
is one Ray task with its own resources (``--threads`` CPUs, one GPU where the run uses CUDA).

The driver checks the settings, reads and splits the data once per seed (so that the decoded-
image cache exists before any task starts, and the folder is written only once the data are
readable), then submits every unfinished run. Each task reads the data again (a cache hit),
runs an ordinary run folder exactly as ``--executor local`` does (``runner.execute``) and
returns; the driver writes ``results.csv`` and a progress line as each one ends. Run folders and
caches must lie on a file system every worker sees (one machine: always).

Resumable as the local path: a finished run is skipped, a half-done one resumes from its last
finished round. A task whose worker dies (killed, out of memory, its node lost) is retried by
Ray on another worker (``MAX_RETRIES``) and resumes from the folder; an exception of the run
itself is not retried, and its message is the benchmark's error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unisal.benchmark.spec import Job
from unisal.errors import RunError, UnisalError

MAX_RETRIES = 3  # retries of a task whose worker died (not of one whose run raised)


def run_on_ray(
    plan: Any,
    jobs: list[Job],
    *,
    task: Callable[[Any, Job], float],
    finished: Callable[[Job, float], None],
    gpus: int,
    address: str | None,
) -> None:
    """Run ``task(plan, job)`` for every job as a Ray task (``plan.base.threads`` CPUs and
    ``gpus`` GPUs each), joining ``address``, reusing an initialised Ray or starting a local
    instance; ``finished(job, seconds)`` as each one ends, in the order they end."""
    from unisal.distributed import ray_session

    with ray_session(address) as ray:
        remote = ray.remote(task).options(
            num_cpus=plan.base.threads or 1, num_gpus=gpus, max_retries=MAX_RETRIES, retry_exceptions=False
        )
        plan_ref = ray.put(plan)
        pending = {remote.remote(plan_ref, job): job for job in jobs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                job = pending.pop(ref)
                finished(job, _result(ray, ref, job))


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
