"""Backends: WHERE evaluations run (inline, process pool, Ray).

Every backend has the interface of :class:`~nas_env.backends.base.Backend`; build one by name
with :func:`make_backend` (``"local"``, ``"pool"``, ``"ray"``). Ray is imported only by the Ray
backend.
"""

from nas_env.backends.base import BACKEND_NAMES, Backend, Completion, make_backend
from nas_env.backends.local import LocalBackend
from nas_env.backends.pool import PoolBackend
from nas_env.backends.threads import limit_threads, threads_per_worker, vector_env_fns

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "Completion",
    "LocalBackend",
    "PoolBackend",
    "limit_threads",
    "make_backend",
    "threads_per_worker",
    "vector_env_fns",
]
