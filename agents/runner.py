"""Feeding complete token sequences to an env, one token per step (how every agent gets its rewards)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from nas_env.records import TokenSpec

AnyEnv = gym.Env[Any, Any] | gym.vector.VectorEnv[Any, Any, Any]
"""A token env of this package (wrapped or not), or a vector env of them."""


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
