"""Stable-Baselines3 agents (PPO, A2C, DQN) and sb3-contrib's MaskablePPO behind :class:`SearchAgent`.

Each episode of a token env designs one architecture; these agents see the flat observation and
pick one token per step like any Gymnasium task. MaskablePPO reads the env's ``action_masks()``
and never picks a masked action; the others rely on the env's wrapping rule (a masked action ``a``
selects choice ``a % num_choices``).

Settings are the algorithm's own constructor arguments (``learning_rate``, ``n_steps``,
``tensorboard_log``...), plus ``policy`` (default ``"MlpPolicy"``) and ``progress_bar`` (SB3's
own bar). A checkpoint is SB3's model zip next to the history; a resumed run continues from the
last saved model (the replay buffer and RNG state are not saved, so it does not repeat the
uninterrupted run exactly).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
import torch

from agents.base import AnyEnv, SearchAgent
from agents.callbacks import BudgetCallback
from nas_env.errors import DependencyNotInstalled
from nas_env.threads import torch_threads

ALGORITHMS: dict[str, tuple[str, str]] = {
    "ppo": ("stable_baselines3", "PPO"),
    "a2c": ("stable_baselines3", "A2C"),
    "dqn": ("stable_baselines3", "DQN"),
    "maskable_ppo": ("sb3_contrib", "MaskablePPO"),
}
"""Agent name to (module, class), as SB3's ``policy_aliases`` maps names to policies."""

_EXTRA_SETTINGS = ("policy", "progress_bar")
_NOT_SETTINGS = ("self", "policy", "env", "seed", "_init_setup_model")


def algorithm_class(name: str) -> type[Any]:
    """Import the SB3 algorithm class of agent ``name``.

    Raises:
        DependencyNotInstalled: sb3-contrib is needed for ``maskable_ppo`` and is missing.
    """
    module_name, class_name = ALGORITHMS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DependencyNotInstalled(
            f"agent {name!r} needs {module_name}; install it with `pip install nas-env[contrib]`"
        ) from exc
    return getattr(module, class_name)


class TerminalRewardInfo(gym.Wrapper[Any, Any, Any, Any]):
    """Copies the terminal reward into ``info["reward"]`` (a Python float); steps with the caller's threads.

    SB3's vector env keeps rewards in a float32 buffer; the recorded reward must be the env's own.
    The agent trains its policy on one thread (see :func:`~nas_env.threads.torch_threads`); a child
    trained inside ``env.step`` gets the thread count the env was created with.
    """

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        self.num_threads = torch.get_num_threads()

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the wrapped env; on the last step add ``info["reward"]``."""
        with torch_threads(self.num_threads):
            obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            info = {**info, "reward": float(reward)}
        return obs, reward, terminated, truncated, info


class SB3Agent(SearchAgent):
    """A Stable-Baselines3 algorithm searching architectures one token per env step.

    Args:
        env: A (non-vector) token env of this package, possibly wrapped.
        seed: Seed of the algorithm and of the env.
        **overrides: Constructor arguments of the algorithm, plus ``policy`` and ``progress_bar``.

    Raises:
        ValueError: An unknown setting, or a vector env (SB3 builds its own).
        DependencyNotInstalled: ``tensorboard_log`` given without tensorboard, or sb3-contrib missing.
    """

    name = "sb3"

    def __init__(self, env: AnyEnv, seed: int = 0, **overrides: Any) -> None:
        if isinstance(env, gym.vector.VectorEnv):
            raise ValueError(f"agent {self.name!r} needs a single env; SB3 vectorises it itself")
        cls = algorithm_class(self.name)
        if overrides.get("tensorboard_log") and importlib.util.find_spec("tensorboard") is None:
            raise DependencyNotInstalled("tensorboard_log needs tensorboard; `pip install tensorboard`")
        if overrides.get("progress_bar") and importlib.util.find_spec("rich") is None:
            raise DependencyNotInstalled("SB3's progress_bar needs rich; `pip install rich` (or omit it)")
        super().__init__(TerminalRewardInfo(env), seed, **overrides)
        kwargs = dict(overrides)
        self.policy = kwargs.pop("policy", "MlpPolicy")
        self.progress_bar = bool(kwargs.pop("progress_bar", False))
        self.algo_class = cls
        self.model_kwargs = kwargs
        self.model = cls(self.policy, self.env, seed=self.seed, verbose=0, **kwargs)

    def setting_names(self) -> list[str]:
        """Settings: the algorithm's constructor arguments (not env, seed), policy, progress_bar."""
        cls = algorithm_class(self.name)
        allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in _NOT_SETTINGS]
        return [*allowed, *_EXTRA_SETTINGS]

    def config_dict(self) -> dict[str, Any]:
        """The settings given (the algorithm's other arguments are SB3's defaults)."""
        return {"algorithm": self.algo_class.__name__, "policy": self.policy, **self.model_kwargs}

    def _search(self, budget: int) -> None:
        steps_per_arch = len(self.env.unwrapped.token_schedule())  # type: ignore[union-attr]
        remaining = budget - len(self.history)
        callback = BudgetCallback(self._record, lambda: budget - len(self.history))
        with torch_threads(1):
            self._learn(remaining, steps_per_arch, callback)

    def _learn(self, remaining: int, steps_per_arch: int, callback: BudgetCallback) -> None:
        self.model.learn(
            total_timesteps=(remaining + 1) * steps_per_arch,
            callback=callback,
            progress_bar=self.progress_bar,
            reset_num_timesteps=False,
            tb_log_name=self.name,
        )

    def state_dict(self) -> dict[str, Any]:
        """The history (the model itself is saved by :meth:`save` as SB3's zip)."""
        return {"history": self._history_state(), "num_timesteps": int(self.model.num_timesteps)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the history."""
        self._load_history(state["history"])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the history to ``path`` and the model to ``path`` with suffix ``.zip``."""
        model_path = Path(path).with_suffix(".zip")
        tmp = model_path.with_name("tmp_" + model_path.name)
        self.model.save(tmp)
        os.replace(tmp, model_path)
        super().save(path)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore the history and the last saved model."""
        super().load(path)
        self.model = self.algo_class.load(
            Path(path).with_suffix(".zip"), env=self.env, device=self.model.device, **self.model_kwargs
        )


class PPOAgent(SB3Agent):
    """PPO (Schulman et al. 2017) from Stable-Baselines3; masked actions are wrapped by the env."""

    name = "ppo"


class A2CAgent(SB3Agent):
    """A2C (Mnih et al. 2016) from Stable-Baselines3; masked actions are wrapped by the env."""

    name = "a2c"


class DQNAgent(SB3Agent):
    """DQN (Mnih et al. 2015) from Stable-Baselines3; masked actions are wrapped by the env."""

    name = "dqn"


class MaskablePPOAgent(SB3Agent):
    """sb3-contrib's MaskablePPO: PPO that samples only the actions ``action_masks()`` allows."""

    name = "maskable_ppo"
