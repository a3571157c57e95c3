"""The backend interface: WHERE evaluations run (inline, a process pool, a Ray cluster).

A backend is bound to one :class:`~nas_env.evaluators.base.Evaluator`. Callers ``submit`` an
architecture and a training seed and get a ticket back, then ``harvest`` results as they
complete, in whatever order the children finish (no lock-step batch waits for the slowest):

>>> from nas_env.backends import make_backend
>>> backend = make_backend("local", evaluator)          # doctest: +SKIP
>>> tickets = [backend.submit(arch, seed) for arch, seed in requests]  # doctest: +SKIP
>>> while backend.pending:                              # doctest: +SKIP
...     for done in backend.harvest():
...         print(done.ticket, done.result.status)

Failures come in two kinds, treated differently:

* **The worker died** (process killed, node lost, out of memory): the child is submitted again,
  at most ``max_retries`` times; after that it completes with ``status="failed"`` and the error.
  Every failed attempt is kept in :attr:`Completion.failed_attempts` so the store can record it.
* **The evaluator raised** (a bug: evaluators return ``status="failed"`` for children that fail
  to train): retrying cannot help, so ``harvest`` raises
  :class:`~nas_env.errors.EvaluationError` naming the architecture. Results that completed in
  the same call are kept and returned by the next ``harvest``: nothing completed is lost.
"""

from __future__ import annotations

import importlib
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from nas_env.errors import EvaluationError, check_choice, check_range
from nas_env.evaluators.base import Evaluator
from nas_env.records import EvalResult


@dataclass(frozen=True)
class Completion:
    """A finished evaluation as a backend hands it back."""

    ticket: int
    """The number :meth:`Backend.submit` returned."""
    arch: Any
    """The architecture that was evaluated."""
    seed: int
    """Its training seed."""
    result: EvalResult
    """The final result (``status="failed"`` after the last retry when workers kept dying)."""
    failed_attempts: tuple[EvalResult, ...] = ()
    """One ``status="failed"`` result per attempt lost to a dead worker, oldest first."""

    @property
    def attempts(self) -> int:
        """Number of times the child was started."""
        return len(self.failed_attempts) + 1


@dataclass
class _Request:
    """A submitted evaluation and its failed attempts so far (internal)."""

    ticket: int
    arch: Any
    seed: int
    submitted: float = field(default_factory=time.perf_counter)
    failed: list[EvalResult] = field(default_factory=list)


class Backend(ABC):
    """Runs an evaluator's ``evaluate(arch, seed)`` somewhere and hands back results as they complete.

    Subclasses implement :meth:`_start` (begin one attempt of a request) and :meth:`_wait`
    (block until at least one attempt ends, up to a timeout). This class keeps the tickets, the
    retry budget and the results not yet handed out.

    Args:
        evaluator: What scores an architecture (must pickle for process and Ray backends).
        max_retries: Times a child whose worker died is started again before it fails (>= 0).
    """

    name: str = "backend"

    def __init__(self, evaluator: Evaluator, max_retries: int = 2) -> None:
        check_range("max_retries", max_retries, 0, 1000)
        self.evaluator = evaluator
        self.max_retries = max_retries
        self._next_ticket = 0
        self._requests: dict[int, _Request] = {}
        self._ready: list[Completion] = []
        self._errors: list[tuple[int, EvaluationError]] = []

    # ---- what subclasses implement ------------------------------------------------------------

    @abstractmethod
    def _start(self, request: _Request) -> None:
        """Begin one attempt of ``request`` (called again for each retry)."""

    @abstractmethod
    def _wait(self, timeout: float | None) -> None:
        """Block until an attempt ends (or ``timeout`` s pass) and report every ended attempt.

        Report through :meth:`_complete`, :meth:`_worker_died` or :meth:`_raised`.
        """

    # ---- the public interface -----------------------------------------------------------------

    def submit(self, arch: Any, seed: int) -> int:
        """Start evaluating ``arch`` with training seed ``seed``; returns its ticket."""
        request = _Request(self._next_ticket, arch, int(seed))
        self._next_ticket += 1
        self._requests[request.ticket] = request
        self._start(request)
        return request.ticket

    @property
    def pending(self) -> int:
        """Evaluations submitted whose outcome has not been handed out yet."""
        return len(self._requests) + len(self._ready) + len(self._errors)

    def harvest(
        self, timeout: float | None = None, tickets: Collection[int] | None = None
    ) -> list[Completion]:
        """The evaluations that completed since the last call; waits for one if none has.

        Args:
            timeout: Longest wait in seconds for a first completion (``None``: until one
                completes). Returns ``[]`` when it passes, or when nothing is pending.
            tickets: Hand out only these tickets (``None``: all); others stay for later calls.

        Returns:
            Completions in the order they were noticed.

        Raises:
            EvaluationError: The evaluator raised for a child (results completed alongside are
                returned by the next call).
        """
        return self._take(None if tickets is None else set(tickets), timeout)

    def as_completed(self, requests: Sequence[tuple[Any, int]]) -> Iterator[tuple[int, Completion]]:
        """Submit ``(arch, seed)`` pairs now; iterate ``(index in requests, completion)`` as they finish.

        Only these requests are waited for and handed out; other tickets stay for ``harvest``.

        Raises:
            EvaluationError: The evaluator raised for one of these children.
        """
        index = {self.submit(arch, seed): i for i, (arch, seed) in enumerate(requests)}
        return self._iter_completed(index)

    def _iter_completed(self, index: dict[int, int]) -> Iterator[tuple[int, Completion]]:
        while index:
            for done in self._take(set(index), None):
                yield index.pop(done.ticket), done

    def _take(self, wanted: set[int] | None, timeout: float | None) -> list[Completion]:
        """Hand out completions of ``wanted`` tickets (all when ``None``), waiting until one or timeout.

        A retried attempt is not a completion: waiting goes on until a result or the deadline.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        polled = False
        while True:
            for i, (ticket, error) in enumerate(self._errors):
                if wanted is None or ticket in wanted:
                    del self._errors[i]
                    raise error
            out = [c for c in self._ready if wanted is None or c.ticket in wanted]
            if out or not any(wanted is None or t in wanted for t in self._requests):
                break
            if polled and deadline is not None and time.monotonic() >= deadline:
                break
            self._wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
            polled = True
        taken = {c.ticket for c in out}
        self._ready = [c for c in self._ready if c.ticket not in taken]
        return out

    def evaluate(self, arch: Any, seed: int) -> Completion:
        """Submit one child and wait for it (other completions stay for the next harvest)."""
        return next(self.as_completed([(arch, seed)]))[1]

    def map(self, requests: Sequence[tuple[Any, int]]) -> list[Completion]:
        """Evaluate every ``(arch, seed)`` pair in parallel; completions in the order of ``requests``."""
        out: list[Completion | None] = [None] * len(requests)
        for i, done in self.as_completed(requests):
            out[i] = done
        return [c for c in out if c is not None]

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release workers (and stop what this backend started). Pending results are dropped."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(evaluator={type(self.evaluator).__name__}, pending={self.pending})"

    # ---- bookkeeping for subclasses -----------------------------------------------------------

    def _complete(self, ticket: int, result: EvalResult) -> None:
        """An attempt returned ``result``: the request is done."""
        request = self._requests.pop(ticket)
        self._ready.append(Completion(ticket, request.arch, request.seed, result, tuple(request.failed)))

    def _worker_died(self, ticket: int, error: str) -> None:
        """An attempt was lost with its worker: start it again, or fail it after the last retry."""
        request = self._requests[ticket]
        attempt = len(request.failed) + 1
        text = f"{error} (attempt {attempt} of {self.max_retries + 1})"
        failed = EvalResult(
            "failed", error=text, seed=request.seed, cost_s=time.perf_counter() - request.submitted
        )
        if attempt > self.max_retries:
            self._complete(ticket, failed)
            return
        request.failed.append(failed)
        request.submitted = time.perf_counter()
        self._start(request)

    def _raised(self, ticket: int, cause: BaseException | str) -> None:
        """The evaluator raised: the request ends, and ``harvest`` will raise ``EvaluationError``."""
        request = self._requests.pop(ticket)
        arch = request.arch.to_str() if hasattr(request.arch, "to_str") else str(request.arch)
        error = EvaluationError(arch, cause)
        if isinstance(cause, BaseException):
            error.__cause__ = cause
        self._errors.append((ticket, error))


# ---- construction by name ---------------------------------------------------------------------------

BACKENDS: dict[str, str] = {
    "local": "nas_env.backends.local:LocalBackend",
    "pool": "nas_env.backends.pool:PoolBackend",
    "ray": "nas_env.backends.ray:RayBackend",
}
"""Backend name (env kwarg ``backend=``, ``--backend``) to ``module:Class``; imported on first use."""

BACKEND_NAMES: tuple[str, ...] = tuple(BACKENDS)
"""Names accepted by :func:`make_backend`."""


def make_backend(name: str, evaluator: Evaluator, **kwargs: Any) -> Backend:
    """Build a backend by name (Ray is imported only when ``name == "ray"``).

    Args:
        name: One of :data:`BACKEND_NAMES`.
        evaluator: The evaluator it runs.
        **kwargs: The backend's own arguments (``num_workers``, ``address``...).

    Raises:
        ValueError: Unknown name (with a "did you mean").
        DependencyNotInstalled: ``"ray"`` without Ray installed.
    """
    check_choice("backend", name, BACKEND_NAMES)
    module_name, class_name = BACKENDS[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    backend: Backend = cls(evaluator, **kwargs)
    return backend
