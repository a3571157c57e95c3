"""Evaluate in a pool of worker processes on this machine, threads divided between them."""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from nas_env.backends.base import Backend, _Request
from nas_env.backends.threads import available_cpus, limit_threads, threads_per_worker
from nas_env.errors import check_choice, check_range
from nas_env.evaluators.base import Evaluator
from nas_env.type_aliases import EvalResult

_evaluator: Evaluator | None = None
"""The evaluator of this worker process, set once by :func:`_init_worker`."""


def _init_worker(evaluator: Evaluator, num_threads: int) -> None:
    global _evaluator
    limit_threads(num_threads)
    _evaluator = evaluator


def _evaluate_in_worker(arch: Any, seed: int) -> EvalResult:
    assert _evaluator is not None, "worker not initialised"
    return _evaluator.evaluate(arch, seed)


class PoolBackend(Backend):
    """Runs children in ``num_workers`` processes, each with ``cores // num_workers`` torch threads.

    The evaluator is sent to each worker once, when the pool starts (lazily, at the first
    ``submit``), so per-process caches such as the loaded CIFAR-10 arrays are reused by every child
    that worker trains. Workers start with ``spawn`` by default: forking a process whose OpenMP
    thread pool has run can deadlock the child.

    A worker that dies (killed, out of memory) breaks the whole pool in Python's
    ``ProcessPoolExecutor``: the pool is rebuilt and every child that was running in it is started
    again, each such loss counting as one attempt of that child.

    Args:
        evaluator: What scores an architecture (must pickle).
        num_workers: Worker processes; defaults to the cores available.
        num_threads: Torch threads per worker; defaults to ``cores // num_workers``.
        start_method: ``"spawn"``, ``"forkserver"`` or ``"fork"``.
        max_retries: Restarts of a child whose worker died before it fails.
    """

    name = "pool"

    def __init__(
        self,
        evaluator: Evaluator,
        num_workers: int | None = None,
        num_threads: int | None = None,
        start_method: str = "spawn",
        max_retries: int = 2,
    ) -> None:
        super().__init__(evaluator, max_retries)
        self.num_workers = available_cpus() if num_workers is None else num_workers
        check_range("num_workers", self.num_workers, 1, 4096)
        self.num_threads = threads_per_worker(self.num_workers) if num_threads is None else num_threads
        check_range("num_threads", self.num_threads, 1, 4096)
        check_choice("start_method", start_method, mp.get_all_start_methods())
        self.start_method = start_method
        self._executor: ProcessPoolExecutor | None = None
        self._generation = 0
        self._futures: dict[Future[EvalResult], tuple[int, int]] = {}

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.num_workers,
                mp_context=mp.get_context(self.start_method),
                initializer=_init_worker,
                initargs=(self.evaluator, self.num_threads),
            )
            self._generation += 1
        return self._executor

    def _start(self, request: _Request) -> None:
        pool = self._pool()
        future = pool.submit(_evaluate_in_worker, request.arch, request.seed)
        self._futures[future] = (request.ticket, self._generation)

    def _wait(self, timeout: float | None) -> None:
        if not self._futures:
            return
        done, _ = wait(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        lost: list[int] = []
        for future in done:
            ticket, generation = self._futures.pop(future)
            error = future.exception()
            if isinstance(error, BrokenProcessPool):
                lost.append(ticket)
                if generation == self._generation:  # this pool is broken: the next submit makes one
                    self._discard_pool()
            elif error is not None:
                self._raised(ticket, error)
            else:
                self._complete(ticket, future.result())
        for ticket in lost:
            self._worker_died(ticket, "worker process died (BrokenProcessPool)")

    def _discard_pool(self, terminate: bool = False) -> None:
        if self._executor is not None:
            # ProcessPoolExecutor has no public way to stop a running task (3.14 adds one)
            workers = list(getattr(self._executor, "_processes", {}).values()) if terminate else []
            self._executor.shutdown(wait=False, cancel_futures=True)
            for process in workers:
                process.terminate()
            self._executor = None

    def close(self) -> None:
        """Stop the workers (children still training are terminated) and drop pending results."""
        self._discard_pool(terminate=bool(self._futures))
        self._futures.clear()
        self._requests.clear()

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the settings only: a copy starts its own pool, with nothing in flight."""
        state = dict(self.__dict__)
        state.update(_executor=None, _futures={}, _requests={}, _ready=[], _errors=[])
        return state
