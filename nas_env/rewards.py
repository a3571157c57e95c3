"""Reward functions: an evaluation's metrics -> the scalar the agent maximises.

A failed evaluation always gets ``FAILED_REWARD``.
"""

from __future__ import annotations

from collections.abc import Callable

from nas_env.errors import check_choice
from nas_env.records import EvalResult, Metric

FAILED_REWARD = 0.0
"""Reward of a child whose training failed (NaN loss, out of memory...)."""

RewardFn = Callable[[EvalResult], float]


def cubed_accuracy(result: EvalResult) -> float:
    """The paper's CNN reward (section 4.1): the ``val_accuracy`` metric, cubed.

    The metric is whatever the evaluator reports: for a trained child the maximum validation
    accuracy over its recipe's last ``Fidelity.reward_epochs`` epochs (the paper's recipe: 5, as
    in section 4.1; the ``proxy`` and ``smoke`` presets: 1), for NAS-Bench-201 the table's
    ``reward_metric`` column, and under weight sharing the shared-weight validation accuracy.
    """
    return float(result.metrics[Metric.VAL_ACCURACY]) ** 3


def accuracy(result: EvalResult) -> float:
    """The validation accuracy itself, in [0, 1]."""
    return float(result.metrics[Metric.VAL_ACCURACY])


def inverse_squared_perplexity(result: EvalResult, c: float = 80.0) -> float:
    """The paper's language-model reward (section 4.2): ``c / val_perplexity**2`` with c = 80."""
    return c / float(result.metrics[Metric.VAL_PERPLEXITY]) ** 2


REWARDS: dict[str, RewardFn] = {"paper": cubed_accuracy, "accuracy": accuracy}
"""Named rewards of the accuracy-scored envs."""


def get_reward(name: str, table: dict[str, RewardFn] | None = None) -> RewardFn:
    """Look a reward up by name.

    Raises:
        ValueError: Unknown name; the message lists the known ones.
    """
    table = REWARDS if table is None else table
    check_choice("reward", name, table)
    return table[name]


def compute_reward(fn: RewardFn, result: EvalResult) -> float:
    """``fn(result)`` for a successful evaluation, ``FAILED_REWARD`` otherwise."""
    return fn(result) if result.status == "ok" else FAILED_REWARD
