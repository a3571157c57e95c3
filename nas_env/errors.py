"""Exceptions raised by ``nas_env``.

Every error names the offending value, what was expected and how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class NASEnvError(Exception):
    """Root of every error raised by this package."""


class InvalidActionError(NASEnvError, ValueError):
    """An action that is not valid at the current step (strict mode) or outside the space."""


class InvalidArchitectureError(NASEnvError, ValueError):
    """An architecture string or token sequence that does not describe a network of the space."""


class EvaluationError(NASEnvError, RuntimeError):
    """Training or scoring a child network failed."""

    def __init__(self, arch: str, cause: BaseException | str) -> None:
        """Wrap ``cause`` and remember which architecture failed."""
        self.arch = arch
        self.cause = cause
        super().__init__(f"evaluating {arch!r} failed: {cause}")


class DatasetError(NASEnvError, OSError):
    """A dataset is missing or corrupt."""


class DependencyNotInstalled(NASEnvError, ImportError):
    """An optional dependency is needed for this feature."""


def check_choice(name: str, value: object, allowed: Iterable[object]) -> None:
    """Raise ``ValueError`` naming ``value`` and the allowed ones unless ``value`` is allowed.

    Args:
        name: The argument's name, for the message.
        value: The value given.
        allowed: The values accepted.

    Raises:
        ValueError: ``value`` is not in ``allowed``; the message suggests the closest name.
    """
    allowed = list(allowed)
    if value in allowed:
        return
    raise ValueError(
        f"{name}={value!r} is not allowed; expected one of {allowed}.{did_you_mean(value, allowed)}"
    )


def did_you_mean(value: object, allowed: Iterable[object]) -> str:
    """``" Did you mean 'x'?"`` for the allowed name closest to ``value`` (Gymnasium's hint), else ``""``."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, [str(a) for a in allowed], n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_range(name: str, value: int, low: int, high: int) -> None:
    """Raise ``ValueError`` unless ``low <= value <= high`` (and ``value`` is an int).

    Raises:
        ValueError: ``value`` is not an integer in ``[low, high]``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}={value!r} is out of range; expected an integer in [{low}, {high}].")
