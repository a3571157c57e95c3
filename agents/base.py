"""The one interface every search agent implements, and the helper that feeds tokens to the env.

An agent proposes architectures and gets every reward by stepping a Gymnasium env of this
package, one token per step (no private back door to the evaluator). It records each evaluated
architecture as an :class:`Evaluation`, in the order they happened, and can save and restore all
of its state so that a killed run resumes exactly where it stopped.

>>> from agents import make_agent                                          # doctest: +SKIP
>>> agent = make_agent("reinforce", env, seed=0, batch_size=8)             # doctest: +SKIP
>>> history = agent.search(budget=100, callback=print)                    # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.runner import AnyEnv, TokenRunner
from nas_env.errors import did_you_mean

AGENTS: dict[str, str] = {
    "reinforce": "agents.reinforce:ReinforceAgent",
    "random": "agents.baselines:RandomSearchAgent",
    "evolution": "agents.baselines:RegularizedEvolutionAgent",
    "ppo": "agents.sb3:PPOAgent",
    "a2c": "agents.sb3:A2CAgent",
    "dqn": "agents.sb3:DQNAgent",
    "maskable_ppo": "agents.sb3:MaskablePPOAgent",
    "reinforce_nb201": "agents.nb201_reinforce:NB201ReinforceAgent",
    "local_search": "agents.local_search:LocalSearchAgent",
    "halving": "agents.halving:SuccessiveHalvingAgent",
    "screened_local_search": "agents.screen:ScreenedLocalSearchAgent",
    "screened_random": "agents.screen:ScreenedRandomAgent",
    "screened_evolution": "agents.screen:ScreenedEvolutionAgent",
}
"""Agent name (as on the command line) to ``module:Class``; imported on first use."""

AGENT_NAMES: tuple[str, ...] = tuple(AGENTS)
"""Names accepted by :func:`make_agent`."""

EvalCallback = Callable[["Evaluation"], None]
"""Called once per evaluated architecture, right after the agent recorded it."""


@dataclass(frozen=True)
class Evaluation:
    """One evaluated architecture.

    ``info`` holds the env's terminal ``info`` with plain Python values only (``action_mask``
    dropped, NumPy scalars converted), so that evaluations save with ``weights_only=True``.
    """

    index: int
    """Position in the run, from 0, in the order the evaluations happened."""
    arch: str
    """Canonical architecture string (the env's ``info["arch"]``)."""
    reward: float
    """The env's reward for the architecture."""
    info: dict[str, Any] = field(default_factory=dict)
    """The env's terminal ``info`` (``cached``, ``val_accuracy``, ``num_params``...)."""

    def to_state(self) -> tuple[int, str, float, dict[str, Any]]:
        """A plain tuple that ``torch.load(weights_only=True)`` accepts."""
        return (self.index, self.arch, self.reward, dict(self.info))

    @classmethod
    def from_state(cls, state: Sequence[Any]) -> Evaluation:
        """Inverse of :meth:`to_state`."""
        index, arch, reward, info = state
        return cls(int(index), str(arch), float(reward), dict(info))


class SearchAgent(ABC):
    """A search agent: proposes architectures, steps the env to score them, learns from the rewards.

    This class owns the settings (checked against :attr:`config_class`, with a "did you mean"),
    the seed, the budget, the history and its part of the checkpoint. Most agents derive from
    :class:`AskTellAgent`, which also owns the loop and the pending children, and write only
    ``propose`` and ``observe``. Agents with a loop of their own (SB3's ``learn``, the distributed
    controller) implement :meth:`_search`, calling :meth:`_record` for every evaluation; at that
    moment the agent's state must be consistent (a checkpoint taken inside the callback resumes
    exactly).

    Args:
        env: A Gymnasium env of this package (wrapped or not), or a vector env of them.
        seed: Root seed of the agent's randomness and of the env (``reset(seed=seed)``).
        **overrides: Agent settings (fields of :attr:`config_class`).
    """

    name: str = "agent"
    config_class: type[Any] | None = None
    """Frozen dataclass of the agent's settings (``None``: it takes none)."""

    def __init__(self, env: AnyEnv, seed: int = 0, **overrides: Any) -> None:
        check_overrides(self.name, overrides, self.setting_names())
        self.env = env
        self.seed = int(seed)
        self.overrides = dict(overrides)
        self.config: Any = None if self.config_class is None else self.config_class(**overrides)
        self.history: list[Evaluation] = []
        self._callback: EvalCallback | None = None

    def setting_names(self) -> list[str]:
        """Settings this agent accepts: the fields of :attr:`config_class` by default."""
        return [] if self.config_class is None else [f.name for f in fields(self.config_class)]

    def search(self, budget: int, callback: EvalCallback | None = None) -> list[Evaluation]:
        """Run until :attr:`history` holds ``budget`` evaluations.

        The budget counts every evaluation since the agent was created or restored from a
        checkpoint, so calling ``search`` again with a larger budget (or after
        :meth:`load`) continues the same run.

        Args:
            budget: Total number of architectures to evaluate (> 0).
            callback: Called with each new :class:`Evaluation`, in order.

        Returns:
            The whole history, in the order the evaluations happened.

        Raises:
            ValueError: ``budget`` is not a positive integer.
        """
        if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
            raise ValueError(f"budget={budget!r} must be a positive integer (number of architectures)")
        self._callback = callback
        try:
            if len(self.history) < budget:
                self._search(budget)
        finally:
            self._callback = None
        return list(self.history)

    def config_dict(self) -> dict[str, Any]:
        """The agent's resolved settings (for the run's ``config.json``)."""
        return dict(self.overrides) if self.config is None else asdict(self.config)

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what the agent made itself (envs of its own); the env it was given is the caller's."""

    def rank_key(self, evaluation: Evaluation) -> tuple[float, ...]:
        """How evaluations compare for "the best found" (higher is better): the reward by default.

        Agents whose rewards are not all on one scale (successive halving's fidelities) override it.
        """
        return (evaluation.reward,)

    def best(self) -> Evaluation:
        """The best evaluation so far by :meth:`rank_key` (ties: the earliest).

        Raises:
            ValueError: Nothing was evaluated yet.
        """
        if not self.history:
            raise ValueError("no evaluation yet: call search() first")
        return max(reversed(self.history), key=self.rank_key)

    @abstractmethod
    def _search(self, budget: int) -> None:
        """The search loop: evaluate until ``len(self.history) >= budget``."""

    def _record(self, arch: str, reward: float, info: dict[str, Any]) -> Evaluation:
        """Append one evaluation to the history and call the callback."""
        evaluation = Evaluation(len(self.history), arch, float(reward), plain_info(info))
        self.history.append(evaluation)
        if self._callback is not None:
            self._callback(evaluation)
        return evaluation

    # ---- checkpoints ----------------------------------------------------------------------------

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: tensors, RNG states, the history (plain types only)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`state_dict` to ``path`` atomically (a kill leaves the previous checkpoint).

        An env with state of its own (``env.unwrapped.state_dict()``, e.g. the shared weights of
        ``weight_sharing=True``) is saved in the same file, so agent and env always match.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        state = self.state_dict()
        holder = _env_state_holder(self.env)
        env_state = holder.state_dict() if holder is not None else None
        if env_state:
            state["env_state"] = env_state
        torch.save(state, tmp)
        os.replace(tmp, path)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore a checkpoint written by :meth:`save` (loaded with ``weights_only=True``)."""
        state = torch.load(path, weights_only=True)
        env_state = state.pop("env_state", None)
        if env_state is not None:
            holder = _env_state_holder(self.env)
            if holder is None:
                raise ValueError(f"{path} holds env state (shared weights) but this env cannot take it")
            holder.load_state_dict(env_state)
        self.load_state_dict(state)

    def _history_state(self) -> list[tuple[int, str, float, dict[str, Any]]]:
        return [e.to_state() for e in self.history]

    def _load_history(self, state: Sequence[Sequence[Any]]) -> None:
        self.history = [Evaluation.from_state(s) for s in state]


class AskTellAgent(SearchAgent):
    """An agent that only proposes token sequences and observes their rewards (Optuna's ask/tell).

    The loop is this class's: while the budget lasts, ask :meth:`propose` for as many sequences
    as the env evaluates at once (the sub-envs of a vector env), step the env through them, then
    tell :meth:`observe` each reward, in order, right before it is recorded. Sequences proposed
    but not yet evaluated are :attr:`pending` and go into the checkpoint with the history; an
    agent adds its own state through :meth:`algorithm_state` / :meth:`load_algorithm_state`.

    Args:
        env: A token env of this package (wrapped or vectorised).
        seed: Root seed of the agent and of ``env.reset(seed=...)``.
        **overrides: Fields of :attr:`config_class`.
    """

    def __init__(self, env: AnyEnv, seed: int = 0, **overrides: Any) -> None:
        super().__init__(env, seed, **overrides)
        self.runner = TokenRunner(env, self.seed)
        self.pending: list[list[int]] = []
        """Proposed, not yet evaluated (oldest first)."""

    def numpy_rng(self) -> np.random.Generator:
        """The agent's NumPy generator, derived from the root seed (one per agent)."""
        return np.random.default_rng(np.random.SeedSequence(self.seed).spawn(1)[0])

    def torch_seeds(self) -> tuple[int, int]:
        """Two seeds derived from the root seed: the model's initialisation and its sampling."""
        init_seed, sample_seed = np.random.SeedSequence(self.seed).generate_state(2)
        return int(init_seed), int(sample_seed)

    @abstractmethod
    def propose(self, count: int) -> Sequence[Sequence[int]]:
        """The next token sequences to evaluate (``count`` is a hint: the env's parallel width)."""

    @abstractmethod
    def observe(self, tokens: Sequence[int], reward: float, info: dict[str, Any]) -> None:
        """Learn from one evaluated sequence (called in proposal order)."""

    def _search(self, budget: int) -> None:
        while len(self.history) < budget:
            if not self.pending:
                self.pending = [list(t) for t in self.propose(self.runner.num_envs)]
            # at most one child per sub-env at a time: each is recorded (and checkpointed) as it ends
            chunk = self.pending[: min(self.runner.num_envs, budget - len(self.history))]
            for reward, info in self.runner.evaluate(chunk):
                self.observe(self.pending.pop(0), float(reward), info)
                self._record(info["arch"], reward, info)

    # ---- checkpoints ----------------------------------------------------------------------------

    def algorithm_state(self) -> dict[str, Any]:
        """The algorithm's own state for checkpoints (plain types and tensors)."""
        return {}

    def load_algorithm_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`algorithm_state` (``state`` is the whole checkpoint)."""

    def state_dict(self) -> dict[str, Any]:
        """Pending sequences, history and :meth:`algorithm_state`."""
        return {
            "pending": [list(t) for t in self.pending],
            **self.algorithm_state(),
            "history": self._history_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self._load_history(state["history"])
        pending = state.get("pending")
        self.pending = [[int(x) for x in t] for t in pending] if isinstance(pending, list) else []
        self.load_algorithm_state(state)


def _env_state_holder(env: AnyEnv) -> Any:
    """The (unwrapped) env when it has ``state_dict``/``load_state_dict`` (shared weights); else None."""
    if isinstance(env, gym.vector.VectorEnv):
        return None
    inner = env.unwrapped
    return inner if hasattr(inner, "state_dict") and hasattr(inner, "load_state_dict") else None


_DROPPED_INFO = frozenset({"action_mask", "episode", "terminal_observation", "TimeLimit.truncated"})


def plain_info(info: dict[str, Any]) -> dict[str, Any]:
    """The terminal ``info`` with plain Python values (NumPy scalars converted, arrays dropped)."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        if key.startswith("_") or key in _DROPPED_INFO:
            continue
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, str | int | float | bool) or value is None:
            out[key] = value
    return out


def check_overrides(agent: str, overrides: dict[str, Any], allowed: Sequence[str]) -> None:
    """Raise ``ValueError`` naming an unknown setting (with a "did you mean") and the allowed ones."""
    for key in overrides:
        if key not in allowed:
            raise ValueError(
                f"unknown setting {key!r} for agent {agent!r}; allowed: {sorted(allowed)}."
                + did_you_mean(key, allowed)
            )


def make_agent(name: str, env: AnyEnv, seed: int = 0, **overrides: Any) -> SearchAgent:
    """Build a search agent by name.

    Args:
        name: One of :data:`AGENT_NAMES`.
        env: The env to search (wrapped or vectorised envs of this package work).
        seed: Root seed.
        **overrides: Agent settings (see ``docs/agents.md``).

    Returns:
        The agent, ready for :meth:`SearchAgent.search`.

    Raises:
        ValueError: Unknown agent name (with a "did you mean") or unknown or invalid setting.
    """
    if name not in AGENTS:
        raise ValueError(
            f"unknown agent {name!r}; expected one of {list(AGENT_NAMES)}.{did_you_mean(name, AGENT_NAMES)}"
        )
    module_name, class_name = AGENTS[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(env, seed=seed, **overrides)
