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

import difflib
import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from nas_env.type_aliases import TokenSpec

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
}
"""Agent name (as on the command line) to ``module:Class``; imported on first use."""

AGENT_NAMES: tuple[str, ...] = tuple(AGENTS)
"""Names accepted by :func:`make_agent`."""

EvalCallback = Callable[["Evaluation"], None]
"""Called once per evaluated architecture, right after the agent recorded it."""

AnyEnv = gym.Env[Any, Any] | gym.vector.VectorEnv[Any, Any, Any]


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

    Subclasses implement :meth:`_search` (the loop), :meth:`state_dict` and
    :meth:`load_state_dict`. The loop must call :meth:`_record` for every evaluation; ``_record``
    appends to :attr:`history` and calls the user's callback, at which point the agent's state
    must be consistent (a checkpoint taken inside the callback resumes exactly).

    Args:
        env: A Gymnasium env of this package (wrapped or not), or a vector env of them.
        seed: Root seed of the agent's randomness and of the env (``reset(seed=seed)``).
        **overrides: Agent settings (fields of the agent's config dataclass).
    """

    name: str = "agent"

    def __init__(self, env: AnyEnv, seed: int = 0, **overrides: Any) -> None:
        self.env = env
        self.seed = int(seed)
        self.overrides = dict(overrides)
        self.history: list[Evaluation] = []
        self._callback: EvalCallback | None = None

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
        """The agent's resolved settings (for the run's ``config.json``); none by default."""
        return dict(self.overrides)

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
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown setting {key!r} for agent {agent!r}; allowed: {sorted(allowed)}.{hint}"
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
        close = difflib.get_close_matches(str(name), AGENT_NAMES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown agent {name!r}; expected one of {list(AGENT_NAMES)}.{hint}")
    module_name, class_name = AGENTS[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(env, seed=seed, **overrides)


@contextmanager
def torch_threads(num_threads: int) -> Iterator[None]:
    """Run a block with ``num_threads`` intra-op threads, then restore the previous count.

    Agents run their small networks (35 to 64 units wide) on one thread: extra threads only add
    synchronisation, and on a loaded machine OpenMP's waiting made a controller update 100x
    slower. Child training inside ``env.step`` keeps the caller's setting.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# ---- stepping the env ------------------------------------------------------------------------------


class TokenRunner:
    """Feeds complete token sequences to an env (or vector env) step by step and collects rewards.

    Every reward comes from ``env.step``; the runner only reads the token schedule through
    ``token_schedule()`` of the innermost env, and sets the depth through the public
    ``reset(options={"num_layers": n})``.

    Args:
        env: A token env of this package, possibly wrapped, or a vector env of them.
        seed: Passed to the first ``reset`` (fixes the children's training seeds).
    """

    def __init__(self, env: AnyEnv, seed: int) -> None:
        self.env: Any = env  # gym.Env or VectorEnv; duck-typed below
        self.is_vector = isinstance(env, gym.vector.VectorEnv)
        self.num_envs = int(getattr(env, "num_envs", 1)) if self.is_vector else 1
        self._seed: int | None = seed
        self._num_layers: int | None = None
        self._options: dict[str, Any] = {}
        self._reset()

    def _reset(self) -> None:
        seed = self._seed
        self._seed = None
        if self.is_vector and seed is not None:
            # the same root seed everywhere: a child's training seed then depends on its arch only
            self.env.reset(seed=[seed] * self.num_envs, options=self._options)
        else:
            self.env.reset(seed=seed, options=self._options)
        self._options = {}

    def schedule(self) -> tuple[TokenSpec, ...]:
        """Token schedule of the env's current configuration."""
        if self.is_vector:
            return tuple(self.env.call("token_schedule")[0])
        return tuple(self.env.unwrapped.token_schedule())  # type: ignore[attr-defined]

    def set_num_layers(self, num_layers: int) -> tuple[TokenSpec, ...]:
        """Change the depth (via reset options) and return the new schedule."""
        if num_layers != self._num_layers:
            self._options = {"num_layers": int(num_layers)}
            self._reset()
            self._num_layers = int(num_layers)
        return self.schedule()

    def evaluate(self, tokens: Sequence[Sequence[int]]) -> list[tuple[float, dict[str, Any]]]:
        """Step the env through each token sequence; return ``(reward, terminal info)`` per sequence.

        A vector env evaluates up to ``num_envs`` sequences at a time (same length required); a
        last, smaller group is padded with copies of its first sequence, so batch sizes that are
        multiples of ``num_envs`` waste nothing.
        """
        out: list[tuple[float, dict[str, Any]]] = []
        for start in range(0, len(tokens), self.num_envs):
            chunk = tokens[start : start + self.num_envs]
            out += self._evaluate_vector(chunk) if self.is_vector else [self._evaluate_one(chunk[0])]
        return out

    def _evaluate_one(self, tokens: Sequence[int]) -> tuple[float, dict[str, Any]]:
        total = 0.0
        for step, token in enumerate(tokens):
            _, reward, terminated, truncated, info = self.env.step(np.int64(token))
            total += float(reward)
            if terminated or truncated:
                if step != len(tokens) - 1:
                    raise RuntimeError(f"episode ended after {step + 1} of {len(tokens)} tokens")
                self._reset()
                return total, info
        raise RuntimeError(f"episode did not end after {len(tokens)} tokens; schedule and env disagree")

    def _evaluate_vector(self, chunk: Sequence[Sequence[int]]) -> list[tuple[float, dict[str, Any]]]:
        n = len(chunk)
        length = len(chunk[0])
        if any(len(t) != length for t in chunk):
            raise ValueError("a vector env needs token sequences of equal length")
        actions = np.tile(np.asarray(chunk[:1], dtype=np.int64), (self.num_envs, 1))
        actions[:n] = np.asarray(chunk, dtype=np.int64)
        for step in range(length):
            _, rewards, terms, truncs, infos = self.env.step(actions[:, step])
        if not np.all(terms | truncs):
            raise RuntimeError(f"vector episodes did not end after {length} tokens")
        results: list[tuple[float, dict[str, Any]]] = []
        rewards = np.asarray(rewards)
        for i in range(n):
            info = {k: v[i] for k, v in infos.items() if not k.startswith("_") and isinstance(v, np.ndarray)}
            results.append((float(rewards[i]), info))
        self._reset()
        return results
