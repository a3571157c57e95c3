"""A local Ray instance with 2 CPUs shared by the tests/test_ray_*.py modules (started once, then shut down).

Each module declares a session-scoped fixture that delegates to :func:`local_ray`; the first to
run starts the instance and stops it at the end of the session, the others reuse it. Ray workers
import test helpers (``synthetic``, these test modules) by name, so the instance is started with
``tests/`` and the repository root on the workers' ``PYTHONPATH``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent


WORKER_ENV = {
    "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")])
}
"""Environment variables of the Ray workers (``runtime_env={"env_vars": WORKER_ENV}``)."""


def local_ray() -> Iterator[Any]:
    """``ray``, connected to a local instance with 2 CPUs (reused if a test already started one)."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": WORKER_ENV},
        )
    yield ray
    if started:
        ray.shutdown()
