"""Ray, where unisal uses it (``--executor ray``): joining a cluster or starting a local one.

Ray is an optional dependency (``pip install 'unisal[ray]'``); the single-process path never
imports it. ``ray_session`` reuses a Ray already initialised in this process (a test's
``ray.init(num_cpus=2)``, a notebook's), else joins ``address`` (or ``RAY_ADDRESS``), else starts
a local instance, and shuts down only what it started.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from unisal.errors import RunError

# passed to every worker, also on a cluster started elsewhere: where caches lie, thread policy
FORWARDED_ENV = ("UNISAL_CACHE", "OMP_WAIT_POLICY", "HF_HOME", "TORCH_HOME")


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise RunError(
            "--executor ray needs Ray: pip install 'unisal[ray]' (or pip install ray), "
            "or use --executor local"
        ) from exc
    return ray


@contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """The ``ray`` module, initialised for the duration of the block."""
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        try:
            ray.init(
                address=address, include_dashboard=False, runtime_env={"env_vars": env} if env else None,
                logging_level="WARNING",
            )  # fmt: skip
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RunError(f"cannot start or reach Ray at {address or 'a local instance'}: {exc}") from exc
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()
