"""Divide the machine's cores between worker processes so that they do not fight over them.

Each child trains with torch's intra-op thread pool. Two workers that each start one thread per
core oversubscribe the machine and both slow down; giving each ``cores // workers`` threads keeps
every core busy once. The process-pool and Ray backends call :func:`limit_threads` in each worker;
for Gymnasium's ``AsyncVectorEnv`` and SB3's ``SubprocVecEnv``, :func:`vector_env_fns` builds env
factories that do it in the worker before the env is made:

>>> threads_per_worker(2, total=8)
4
>>> threads_per_worker(3, total=2)  # more workers than cores: one thread each
1
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch

from nas_env.errors import check_range

_THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def available_cpus() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def threads_per_worker(num_workers: int, total: int | None = None) -> int:
    """Torch threads each of ``num_workers`` processes gets: ``total // num_workers``, at least 1.

    Args:
        num_workers: Worker processes sharing the machine (>= 1).
        total: Cores to share; defaults to :func:`available_cpus`.

    Raises:
        ValueError: ``num_workers`` is not a positive integer.
    """
    check_range("num_workers", num_workers, 1, 1 << 20)
    cores = available_cpus() if total is None else total
    return max(1, cores // num_workers)


def limit_threads(num_threads: int) -> None:
    """Make this process use ``num_threads`` torch threads (and tell child processes the same).

    Sets torch's intra-op threads, one inter-op thread when torch still allows it (only before
    the first parallel op), and ``OMP_NUM_THREADS``-style variables for processes started later.

    Raises:
        ValueError: ``num_threads`` is not a positive integer.
    """
    check_range("num_threads", num_threads, 1, 1 << 16)
    torch.set_num_threads(num_threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work has started: keep torch's choice
        pass
    for name in _THREAD_ENV_VARS:
        os.environ[name] = str(num_threads)


def make_worker_env(env_id: str, num_threads: int, **kwargs: Any) -> gym.Env[Any, Any]:
    """Limit this process's threads, then ``gym.make(env_id, **kwargs)`` (runs inside a worker)."""
    limit_threads(num_threads)
    import nas_env  # noqa: F401 - registers the ids in a freshly spawned worker

    return gym.make(env_id, **kwargs)


def vector_env_fns(
    env_id: str, num_envs: int, num_threads: int | None = None, **kwargs: Any
) -> list[Callable[[], gym.Env[Any, Any]]]:
    """Picklable env factories for ``AsyncVectorEnv`` / ``SubprocVecEnv``, threads divided.

    Give every env the same ``cache_path`` so that all workers share one results store (a
    duplicate architecture is then trained once, and looked up afterwards).

    Example::

        from gymnasium.vector import AsyncVectorEnv
        fns = vector_env_fns("NAS-CIFAR10-v0", 2, fidelity="smoke", cache_path="runs/cache.db")
        envs = AsyncVectorEnv(fns, context="spawn")

    Args:
        env_id: A registered id (``"NAS-CIFAR10-v0"``...).
        num_envs: Number of worker processes.
        num_threads: Torch threads per worker; defaults to :func:`threads_per_worker`.
        **kwargs: Env keyword arguments, the same for every worker.

    Returns:
        ``num_envs`` callables, each making one env in the process that calls it.
    """
    check_range("num_envs", num_envs, 1, 1 << 20)
    threads = threads_per_worker(num_envs) if num_threads is None else num_threads
    check_range("num_threads", threads, 1, 1 << 16)
    return [functools.partial(make_worker_env, env_id, threads, **kwargs) for _ in range(num_envs)]
