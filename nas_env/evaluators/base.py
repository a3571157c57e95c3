"""The evaluator interface, and the one rule every evaluator resolves its ``device`` by."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from nas_env.records import EvalResult


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` means CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Evaluator(ABC):
    """Scores architectures. Implementations must be picklable (they travel to worker processes).

    ``metric_names`` are the metrics every result reports; the env copies them into the terminal
    ``info`` (NaN for a failed child) so that every terminal ``info`` has the same keys.
    """

    metric_names: tuple[str, ...] = ()

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """Identifies everything that changes the score; results are cached per fingerprint."""

    @abstractmethod
    def evaluate(self, arch: Any, seed: int) -> EvalResult:
        """Score ``arch`` (an architecture of the evaluator's space) deterministically given ``seed``.

        A child that fails to train returns ``EvalResult(status="failed", error=...)``; it does not
        raise.
        """

    def check_data(self) -> None:  # noqa: B027 - optional hook: most evaluators read no data
        """Raise :class:`~nas_env.errors.DatasetError` now if the data this evaluator reads is missing.

        Cheap: it looks for the files (downloading them where the evaluator may), loading nothing,
        so that a missing dataset surfaces when the env is made or reset instead of after the last
        token. Evaluators that read no data, or read it when they are made, keep this default.
        """
