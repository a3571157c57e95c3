"""A fast synthetic NAS env for tests: the real TokenNASEnv and CNN space, and no training.

The score of an architecture is the fraction of its decisions (filter height, filter width,
number of filters, and every "does layer j feed layer i" bit) that agree with one fixed target
architecture, so exactly one architecture scores 1.0 and a random one about 0.3.

Importing this module registers ``NAS-Synthetic-v0``; from the command line use gym's
``module:EnvId`` form from the repository root::

    python -m scripts.search --env tests.synthetic:NAS-Synthetic-v0 --agent random --budget 20 --out /tmp/x
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import gymnasium as gym
import numpy as np

from nas_env.envs.token_env import TokenNASEnv
from nas_env.evaluation import Evaluation
from nas_env.evaluators.base import Evaluator
from nas_env.records import EvalResult
from nas_env.rewards import get_reward
from nas_env.search_spaces.cnn import CnnArchitecture, CnnSearchSpace

ENV_ID = "NAS-Synthetic-v0"
NOISE = {"high": 0.0, "mid": 0.05, "low": 0.15}
"""Noise of the synthetic fidelities (successive-halving tests promote from low to high)."""


class MatchEvaluator(Evaluator):
    """Scores an architecture by agreement with a target drawn once from ``target_seed``.

    Args:
        target_seed: Fixes the target (the one best architecture) per depth.
        delay_s: Seconds each evaluation sleeps (to stand in for training in kill/resume tests).
        fidelity: ``"high"`` scores exactly; ``"mid"`` and ``"low"`` add fixed pseudo-random noise
            (standard deviation 0.05 and 0.15) keyed by the architecture, as cheap training would.
    """

    metric_names = ("val_accuracy",)

    def __init__(self, target_seed: int = 0, delay_s: float = 0.0, fidelity: str = "high") -> None:
        if fidelity not in NOISE:
            raise ValueError(f"fidelity={fidelity!r}; expected one of {sorted(NOISE)}")
        self.target_seed = target_seed
        self.delay_s = delay_s
        self.fidelity = fidelity

    @property
    def fingerprint(self) -> str:
        """Depends on the target and the fidelity."""
        suffix = "" if self.fidelity == "high" else f"-{self.fidelity}"
        return f"match-{self.target_seed}{suffix}"

    def target(self, num_layers: int) -> list[int]:
        """Token sequence of the best architecture of a ``num_layers``-layer space."""
        space = CnnSearchSpace(num_layers=num_layers, max_layers=max(num_layers, 15))
        return space.sample(np.random.default_rng([self.target_seed, num_layers]))

    def score(self, arch: CnnArchitecture) -> float:
        """Fraction of the architecture's tokens equal to the target's."""
        space = CnnSearchSpace(num_layers=arch.num_layers, max_layers=max(arch.num_layers, 15))
        tokens = space.encode(arch)
        target = self.target(arch.num_layers)
        exact = float(np.mean(np.asarray(tokens) == np.asarray(target)))
        if self.fidelity == "high":
            return exact
        key = int.from_bytes(hashlib.sha256(arch.to_str().encode()).digest()[:8], "little")
        return exact + NOISE[self.fidelity] * float(np.random.default_rng(key).standard_normal())

    def evaluate(self, arch: Any, seed: int) -> EvalResult:
        """The match score as ``val_accuracy`` (deterministic; ``seed`` is only recorded)."""
        if self.delay_s:
            time.sleep(self.delay_s)
        return EvalResult("ok", {"val_accuracy": self.score(arch)}, num_params=arch.num_layers, seed=seed)


class SyntheticNASEnv(TokenNASEnv):
    """``TokenNASEnv`` over the CNN space with :class:`MatchEvaluator` (rewards in microseconds)."""

    def __init__(
        self,
        num_layers: int = 3,
        max_layers: int = 6,
        reward: str = "accuracy",
        target_seed: int = 0,
        delay_s: float = 0.0,
        cache_path: str | None = None,
        strict_actions: bool = False,
        fidelity: str = "high",
    ) -> None:
        """Build the env; arguments as in ``NAS-CIFAR10-v0`` plus the evaluator's."""
        evaluator = MatchEvaluator(target_seed, delay_s, fidelity)
        evaluation = Evaluation(
            evaluator, get_reward(reward), None if cache_path is None else str(cache_path)
        )
        super().__init__(
            CnnSearchSpace(num_layers=num_layers, max_layers=max_layers), evaluation, strict_actions
        )


def make_synthetic_env(num_layers: int = 3, **kwargs: Any) -> gym.Env[Any, Any]:
    """``gym.make(ENV_ID, ...)``: the synthetic env with gym's standard wrappers."""
    return gym.make(ENV_ID, num_layers=num_layers, **kwargs)


if ENV_ID not in gym.registry:  # the class itself, so that `import synthetic` works as well
    gym.register(id=ENV_ID, entry_point=SyntheticNASEnv)
