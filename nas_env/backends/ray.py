"""Evaluate on a Ray cluster: each child's training is one Ray task.

Ray is optional (``pip install nas-env[ray]``); this module and :mod:`agents.distributed` are the
only ones that import it, and only when a Ray backend is used.

Where it runs: with ``address=`` (or the ``RAY_ADDRESS`` environment variable) the backend joins
that cluster (``"auto"`` finds one started on this machine with ``ray start --head``); with
neither it starts a local Ray instance, shut down again by :meth:`RayBackend.close`. Inside a
process that already called ``ray.init`` (a Ray actor, a notebook), it uses that connection.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from nas_env.backends.base import Backend, _Request
from nas_env.backends.threads import limit_threads
from nas_env.errors import DependencyNotInstalled
from nas_env.evaluators.base import Evaluator
from nas_env.records import EvalResult

INSTALL_HINT = "pip install nas-env[ray]"
"""The install command named by :class:`~nas_env.errors.DependencyNotInstalled`."""


def import_ray() -> ModuleType:
    """Import Ray, or say how to install it.

    Raises:
        DependencyNotInstalled: Ray is not installed.
    """
    try:
        import ray
    except ImportError as exc:
        raise DependencyNotInstalled(
            f"Ray is not installed; distributed evaluation needs it: run `{INSTALL_HINT}`"
        ) from exc
    return ray


def connect_ray(address: str | None = None, **init_kwargs: Any) -> bool:
    """Connect this process to Ray unless it already is.

    Args:
        address: Cluster address (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``); defaults
            to ``$RAY_ADDRESS``; with neither, a local instance is started.
        **init_kwargs: More ``ray.init`` arguments (``num_cpus=`` for a local instance...).

    Returns:
        True when this call started or joined Ray (so the caller should shut it down), False when
        the process was already connected.

    Raises:
        DependencyNotInstalled: Ray is not installed.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        init_kwargs.setdefault("include_dashboard", False)
    ray.init(address=address, **init_kwargs)
    return True


def _evaluate_task(evaluator: Evaluator, arch: Any, seed: int, num_threads: int) -> EvalResult:
    """Body of the Ray task: one child, with this worker's torch threads set to its CPU share."""
    limit_threads(num_threads)
    return evaluator.evaluate(arch, seed)


_remote_evaluate: Any = None


def _remote() -> Any:
    global _remote_evaluate
    if _remote_evaluate is None:
        _remote_evaluate = import_ray().remote(_evaluate_task)
    return _remote_evaluate


def _wants_gpu(evaluator: Evaluator) -> bool:
    return str(getattr(evaluator, "device", "cpu")).startswith("cuda")


class RayBackend(Backend):
    """Sends each child's training to Ray as a task that asks for the resources it needs.

    Each task asks for ``num_cpus`` CPUs (its torch threads) and ``num_gpus`` GPUs: by default
    one GPU when the evaluator trains on CUDA (``device="cuda"``/``"auto"`` on a GPU machine),
    none otherwise. The evaluator is put in Ray's object store once. Ray reuses worker processes,
    so per-process caches (the loaded CIFAR-10 arrays) survive from one child to the next.

    A child whose worker or node dies (``WorkerCrashedError``, ``NodeDiedError``, Ray's
    out-of-memory killer...) is submitted again, where Ray's scheduler finds room, at most
    ``max_retries`` times; Ray's own task retries are turned off so that every lost attempt is
    seen and recorded. An exception raised by the evaluator is not retried (see
    :mod:`nas_env.backends.base`).

    Args:
        evaluator: What scores an architecture (must pickle).
        address: Cluster to join (see :func:`connect_ray`); ``None`` and no ``RAY_ADDRESS``
            starts a local instance.
        num_cpus: CPUs each child task asks for (and its torch threads).
        num_gpus: GPUs each child task asks for; ``None``: 1 when the evaluator's device is CUDA.
        max_retries: Restarts of a child whose worker died before it fails.
        init_kwargs: More ``ray.init`` arguments, used only when this backend connects.

    Raises:
        DependencyNotInstalled: Ray is not installed (raised at the first ``submit``).
    """

    name = "ray"

    def __init__(
        self,
        evaluator: Evaluator,
        address: str | None = None,
        num_cpus: float = 1,
        num_gpus: float | None = None,
        max_retries: int = 2,
        init_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(evaluator, max_retries)
        if not num_cpus > 0:
            raise ValueError(f"num_cpus={num_cpus!r} must be > 0 (CPUs per child task)")
        if num_gpus is not None and num_gpus < 0:
            raise ValueError(f"num_gpus={num_gpus!r} must be >= 0 (GPUs per child task) or None")
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = (1.0 if _wants_gpu(evaluator) else 0.0) if num_gpus is None else num_gpus
        self.init_kwargs = dict(init_kwargs or {})
        self._owns_ray = False
        self._evaluator_ref: Any = None
        self._refs: dict[Any, int] = {}

    def _start(self, request: _Request) -> None:
        if self._evaluator_ref is None:
            self._owns_ray = connect_ray(self.address, **self.init_kwargs)
            self._evaluator_ref = import_ray().put(self.evaluator)
        task = _remote().options(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=0)
        threads = max(1, int(self.num_cpus))
        ref = task.remote(self._evaluator_ref, request.arch, request.seed, threads)
        self._refs[ref] = request.ticket

    def _wait(self, timeout: float | None) -> None:
        if not self._refs:
            return
        ray = import_ray()
        refs = list(self._refs)
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=False)
        if not ready:  # nothing finished yet: block for the first one
            ready, _ = ray.wait(refs, num_returns=1, timeout=timeout, fetch_local=False)
        for ref in ready:
            ticket = self._refs.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # the evaluator raised
                self._raised(ticket, exc)
            except ray.exceptions.RayError as exc:  # worker, node or object lost
                self._worker_died(ticket, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
            else:
                self._complete(ticket, result)

    def close(self) -> None:
        """Cancel children still running, and shut Ray down if this backend started it."""
        if self._refs:
            ray = import_ray()
            for ref in self._refs:
                ray.cancel(ref, force=True)
        self._refs.clear()
        self._requests.clear()
        self._evaluator_ref = None
        if self._owns_ray:
            import_ray().shutdown()
            self._owns_ray = False

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the settings only: a copy connects on its own first submit, with nothing in flight."""
        state = dict(self.__dict__)
        state.update(_owns_ray=False, _evaluator_ref=None, _refs={}, _requests={}, _ready=[], _errors=[])
        return state
