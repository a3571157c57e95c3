"""Rank agreement between two scorings of the same architectures: the project's headline metric."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

_BLOCK = 256
"""Rows of the pair matrix compared at once (memory stays small for thousands of items)."""


def kendall_tau(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Kendall's tau-b of two scorings (ties count in neither direction, as ``scipy.stats.kendalltau``).

    Values are compared through their ranks, so ``-inf`` (no signal) ties with ``-inf`` and ranks
    below everything else; a NaN anywhere makes the result NaN (scipy's ``nan_policy="propagate"``).

    Args:
        x: One score per item.
        y: Another score per item, in the same order.

    Returns:
        Tau-b in [-1, 1]; NaN when fewer than two items, either scoring is constant or has a NaN.

    Raises:
        ValueError: ``x`` and ``y`` differ in length.
    """
    if len(x) != len(y):
        raise ValueError(f"kendall_tau needs scorings of equal length, got {len(x)} and {len(y)}")
    if np.isnan(np.asarray(x, dtype=np.float64)).any() or np.isnan(np.asarray(y, dtype=np.float64)).any():
        return math.nan
    a = np.unique(np.asarray(x, dtype=np.float64), return_inverse=True)[1].astype(np.float64)
    b = np.unique(np.asarray(y, dtype=np.float64), return_inverse=True)[1].astype(np.float64)
    n = len(a)
    concordant = untied_x = untied_y = 0.0
    for start in range(0, n, _BLOCK):
        dx = np.sign(a[start : start + _BLOCK, None] - a[None, :])
        dy = np.sign(b[start : start + _BLOCK, None] - b[None, :])
        upper = np.arange(start, start + len(dx))[:, None] < np.arange(n)[None, :]
        concordant += float((dx * dy)[upper].sum())
        untied_x += float(np.count_nonzero(dx[upper]))
        untied_y += float(np.count_nonzero(dy[upper]))
    return concordant / math.sqrt(untied_x * untied_y) if untied_x and untied_y else math.nan


def rankdata(x: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given their average rank (``scipy.stats.rankdata``'s default; ``-inf`` lowest)."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def rank_average(columns: Sequence[Sequence[float] | np.ndarray]) -> np.ndarray:
    """The mean of several scorings' ranks (:func:`rankdata`): an ensemble relative to the population."""
    return np.mean([rankdata(c) for c in columns], axis=0)
