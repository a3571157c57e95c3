"""Evaluate in a pool of worker processes on this machine, threads divided between them."""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import torch

from nas_env.backends.base import Backend, _Request
from nas_env.backends.devices import (
    DeviceSpec,
    check_memory_per_child,
    default_children_per_device,
    pin_to_device,
    resolve_devices,
)
from nas_env.backends.threads import available_cpus, limit_threads, threads_per_worker
from nas_env.errors import check_choice, check_range
from nas_env.evaluators.base import Evaluator
from nas_env.records import EvalResult

_evaluator: Evaluator | None = None
"""The evaluator of this worker process, set once by :func:`_init_worker`."""


def _init_worker(
    evaluator: Evaluator, num_threads: int, slots: Any = None, memory_per_child_gb: float | None = None
) -> None:
    """Set this worker's threads and, with device slots, take one slot and pin to its device.

    Ctrl-C reaches every process of the terminal's group: workers ignore it and leave the stop
    (one line, outputs kept) to the parent, which shuts the pool down.
    """
    global _evaluator
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_threads(num_threads)
    if slots is not None:
        pin_to_device(evaluator, torch.device(slots.get(timeout=120)), memory_per_child_gb)
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

    **Several children per device.** With ``devices`` and/or ``children_per_device`` the pool
    starts ``children_per_device`` workers for each device, each pinned to its device (the
    evaluator's ``device`` is replaced in the worker by ``"cuda:1"``...), so that one GPU trains
    several children at once: small children leave a GPU mostly idle (see
    :mod:`nas_env.backends.devices`). On CPU, ``devices=["cpu"]`` runs the same path with the
    cores divided between the ``children_per_device`` workers.

    A worker that dies (killed, out of memory) breaks the whole pool in Python's
    ``ProcessPoolExecutor``: the pool is rebuilt and every child that was running in it is started
    again, each such loss counting as one attempt of that child.

    Args:
        evaluator: What scores an architecture (must pickle).
        num_workers: Worker processes; defaults to the cores available (to ``len(devices) *
            children_per_device`` with devices; giving both is an error).
        num_threads: Torch threads per worker; defaults to ``cores // num_workers``.
        start_method: ``"spawn"``, ``"forkserver"`` or ``"fork"``.
        max_retries: Restarts of a child whose worker died before it fails.
        devices: Devices to train on, of the evaluator's device type (``["cuda:0", "cuda:1"]``,
            ``["cpu"]``); ``None`` with ``children_per_device``: every such device.
        children_per_device: Children trained at once on each device; ``None`` with ``devices``:
            one per core on CPU, on GPUs :func:`~nas_env.backends.devices.default_children_per_device`.
        memory_per_child_gb: GiB of GPU memory each worker may use (CUDA only; also sets the
            default ``children_per_device``).

    Raises:
        ValueError: A bad worker count, thread count, start method or device setting (the
            message names the allowed values).
    """

    name = "pool"

    def __init__(
        self,
        evaluator: Evaluator,
        num_workers: int | None = None,
        num_threads: int | None = None,
        start_method: str = "spawn",
        max_retries: int = 2,
        devices: Sequence[DeviceSpec] | None = None,
        children_per_device: int | None = None,
        memory_per_child_gb: float | None = None,
    ) -> None:
        super().__init__(evaluator, max_retries)
        self.devices: list[torch.device] | None = None
        self.children_per_device: int | None = None
        self.memory_per_child_gb = memory_per_child_gb
        if devices is not None or children_per_device is not None or memory_per_child_gb is not None:
            num_workers = self._plan_devices(num_workers, devices, children_per_device)
        self.num_workers = available_cpus() if num_workers is None else num_workers
        check_range("num_workers", self.num_workers, 1, 4096)
        self.num_threads = threads_per_worker(self.num_workers) if num_threads is None else num_threads
        check_range("num_threads", self.num_threads, 1, 4096)
        check_choice("start_method", start_method, mp.get_all_start_methods())
        self.start_method = start_method
        self._executor: ProcessPoolExecutor | None = None
        self._generation = 0
        self._futures: dict[Future[EvalResult], tuple[int, int]] = {}

    def _plan_devices(
        self, num_workers: int | None, devices: Sequence[DeviceSpec] | None, children_per_device: int | None
    ) -> int:
        """Check the device settings and return the worker count they imply."""
        if num_workers is not None:
            raise ValueError(
                f"num_workers={num_workers!r} cannot be combined with devices / children_per_device / "
                "memory_per_child_gb: the workers are len(devices) * children_per_device"
            )
        self.devices = resolve_devices(devices, getattr(self.evaluator, "device", "cpu"))
        check_memory_per_child(self.memory_per_child_gb, self.devices)
        if children_per_device is None:
            children_per_device = default_children_per_device(self.devices, self.memory_per_child_gb)
        check_range("children_per_device", children_per_device, 1, 256)
        self.children_per_device = children_per_device
        return len(self.devices) * children_per_device

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            context = mp.get_context(self.start_method)
            slots = None
            if self.devices is not None:  # one slot per worker, taken by the worker as it starts
                slots = context.Queue()
                for _ in range(self.children_per_device or 1):
                    for device in self.devices:
                        slots.put(str(device))
            self._executor = ProcessPoolExecutor(
                self.num_workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(self.evaluator, self.num_threads, slots, self.memory_per_child_gb),
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
