"""Evaluate inline, in the calling process: the default backend, and the reference the others match."""

from __future__ import annotations

from collections import deque

from nas_env.backends.base import Backend, _Request
from nas_env.evaluators.base import Evaluator


class LocalBackend(Backend):
    """Runs each child in this process, one at a time, when results are harvested.

    ``submit`` only queues; ``harvest`` (or ``evaluate``) trains the oldest queued child and
    returns it, whatever the timeout. No worker can die here, so there are no retries; an
    evaluator that raises surfaces as :class:`~nas_env.errors.EvaluationError`.

    Args:
        evaluator: What scores an architecture.
        max_retries: Accepted for a uniform interface; unused.
    """

    name = "local"

    def __init__(self, evaluator: Evaluator, max_retries: int = 0) -> None:
        super().__init__(evaluator, max_retries)
        self._queue: deque[_Request] = deque()

    def _start(self, request: _Request) -> None:
        self._queue.append(request)

    def _wait(self, timeout: float | None) -> None:
        if not self._queue:
            return
        request = self._queue.popleft()
        try:
            result = self.evaluator.evaluate(request.arch, request.seed)
        except Exception as exc:  # a bug in the evaluator: reported, not retried
            self._raised(request.ticket, exc)
            return
        self._complete(request.ticket, result)

    def close(self) -> None:
        """Drop queued children."""
        self._queue.clear()
        self._requests.clear()
