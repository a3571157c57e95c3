"""Stable-Baselines3 callbacks: record each evaluated architecture and stop at the search budget."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback


class BudgetCallback(BaseCallback):
    """Calls ``record(arch, reward, info)`` at every episode end and stops training at the budget.

    Each episode of a token env designs one architecture, so an episode end (``dones[i]``) is one
    evaluation; its reward and terminal ``info`` come from the env step SB3 just took.

    Args:
        record: Receives ``(arch, reward, info)`` of each finished episode; returns nothing.
        budget_left: Returns how many evaluations remain; training stops when it reaches 0.
    """

    def __init__(
        self, record: Callable[[str, float, dict[str, Any]], object], budget_left: Callable[[], int]
    ):
        super().__init__(verbose=0)
        self._record = record
        self._budget_left = budget_left

    def _on_step(self) -> bool:
        """Record finished episodes; return False (stop) once the budget is spent."""
        dones = self.locals["dones"]
        rewards = self.locals["rewards"]
        infos = self.locals["infos"]
        for i, done in enumerate(dones):
            if done and self._budget_left() > 0:
                info = dict(infos[i])
                reward = float(info.pop("reward", rewards[i]))  # exact, where TerminalRewardInfo wraps
                self._record(str(info["arch"]), reward, info)
        return self._budget_left() > 0
