"""TokenNASEnv: one episode designs one architecture, token by token."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from nas_env.backends.base import make_backend
from nas_env.errors import InvalidActionError, check_choice
from nas_env.evaluators.base import Evaluator
from nas_env.rewards import FAILED_REWARD, RewardFn, compute_reward
from nas_env.search_spaces.base import SearchSpace
from nas_env.store import ResultsStore
from nas_env.type_aliases import EvalResult


def child_seed(root_seed: int, arch: str) -> int:
    """Training seed of a child: a fixed function of the run's root seed and the architecture string.

    Keying by the string (not by the order of sampling) makes a child's reward independent of
    when it was sampled, which keeps cached and fresh evaluations consistent.
    """
    digest = hashlib.sha256(f"{root_seed}:{arch}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class TokenNASEnv(gym.Env[np.ndarray, np.int64]):
    """A search space and an evaluator composed into a token-by-token Gymnasium env.

    ## Description

    Neural architecture search as a sequential decision problem (Zoph & Le, ICLR 2017): each
    step the agent emits one token of an architecture (a filter height, a number of filters, a
    skip connection...). When the last token is chosen the child network is evaluated (trained,
    or looked up) and its score is the reward. Concrete envs (``NAS-CIFAR10-v0``...) fix the
    search space and the evaluator.

    ## Action Space

    ``Discrete(max_vocab)``: action ``a`` picks choice ``a`` of the current step's token (see
    ``token_schedule()``). Steps have fewer choices than ``max_vocab`` (a skip connection is
    yes/no): ``action_masks()`` and ``info["action_mask"]`` say which actions are valid now. An
    in-space action that is masked is **wrapped**: it selects choice ``a % num_choices``, so agents
    that ignore masks (PPO, A2C, DQN) still train. With ``strict_actions=True`` it raises
    :class:`~nas_env.errors.InvalidActionError` instead. An action outside the space always raises.

    ## Observation Space

    ``Box(0, 1, (max_steps * max_vocab + 2 * max_steps + 1,), float32)``, fixed for every size up to
    the space's maximum:

    | part                    | size                   | meaning                                   |
    |-------------------------|------------------------|-------------------------------------------|
    | tokens so far           | max_steps * max_vocab  | one-hot of the choice made at each step   |
    | position                | max_steps              | one-hot of the current step (none at end) |
    | episode length          | max_steps + 1          | one-hot of this episode's number of steps |

    ## Rewards

    0 on every step but the last; the last gives the env's reward function of the evaluation
    (a failed child gets 0, with the error in ``info["error"]``).

    ## Starting State

    No tokens chosen. ``reset(options={"num_layers": n})`` changes the depth of spaces that have
    one (the paper grows it during search).

    ## Episode End

    Terminates after the last token of the architecture; never truncates.

    ## Info

    Every step: ``action_mask``. Terminal step also: ``arch`` (canonical string), ``cached``,
    ``eval_status``, ``error``, ``num_params``, ``train_seconds`` (= ``cost_s``), ``seed`` and every
    metric the evaluator reports (``val_accuracy``...; NaN when the child failed).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}  # noqa: RUF012 - gymnasium convention
    claim_poll_s: float = 0.25
    """Seconds between looks at a shared store for a result that another process is training."""

    def __init__(
        self,
        space: SearchSpace[Any],
        evaluator: Evaluator,
        reward_fn: RewardFn,
        cache_path: str | os.PathLike[str] | None = None,
        strict_actions: bool = False,
        render_mode: str | None = None,
        backend: str = "local",
        backend_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Compose a search space, an evaluator, a reward function and a results store.

        Args:
            space: The search space (its maximum size fixes the spaces).
            evaluator: Scores complete architectures.
            reward_fn: Maps a successful evaluation to the reward.
            cache_path: SQLite results store shared by processes; ``None`` keeps it in memory.
            strict_actions: Raise on masked actions instead of wrapping them.
            render_mode: ``None`` or ``"ansi"``.
            backend: Where children are evaluated: ``"local"`` (this process), ``"pool"`` or
                ``"ray"`` (see :mod:`nas_env.backends`).
            backend_kwargs: The backend's arguments (``{"address": "auto"}``...).
        """
        if render_mode is not None:
            check_choice("render_mode", render_mode, self.metadata["render_modes"])
        self.space = space
        self.evaluator = evaluator
        self.reward_fn = reward_fn
        announce_cost = getattr(evaluator, "announce_cost", None)
        if announce_cost is not None:  # e.g. the paper recipe on CPU: say the hours before they start
            announce_cost()
        self.store = ResultsStore(cache_path)
        self.backend = make_backend(backend, evaluator, **(backend_kwargs or {}))
        self.strict_actions = strict_actions
        self.render_mode = render_mode
        self._max_steps = space.max_steps
        self._vocab = space.max_vocab
        self.action_space = spaces.Discrete(self._vocab)
        self._obs_dim = self._max_steps * self._vocab + 2 * self._max_steps + 1
        self.observation_space = spaces.Box(0.0, 1.0, (self._obs_dim,), np.float32)
        self._tokens: list[int] = []
        self._root_seed: int | None = None
        self.last_result: EvalResult | None = None

    # ---- the token schedule, for agents -------------------------------------------------------

    def token_schedule(self) -> tuple[Any, ...]:
        """The ``TokenSpec`` of every step of the current episode (agents size their heads by it)."""
        return self.space.schedule()

    def action_masks(self) -> np.ndarray:
        """Valid actions at the current step (sb3-contrib's convention); all True after the end."""
        if len(self._tokens) >= len(self.space.schedule()):
            return np.ones(self._vocab, dtype=bool)
        return self.space.mask(len(self._tokens))

    def fidelity_kwargs(self, fidelity: str) -> dict[str, Any]:
        """Constructor arguments that make this env score children at another ``fidelity``.

        Successive halving (:mod:`agents.halving`) remakes the env from its spec with these to
        promote children; trained envs take a preset name as ``fidelity``.
        """
        return {"fidelity": fidelity}

    # ---- gymnasium API ------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new architecture. ``seed`` also fixes the children's training seeds."""
        super().reset(seed=seed)
        if seed is not None or self._root_seed is None:
            self._root_seed = int(seed) if seed is not None else int(self.np_random.integers(2**31))
        options = dict(options or {})
        if "num_layers" in options:
            self.space = self.space.resized(options.pop("num_layers"))
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; allowed: ['num_layers']")
        self._tokens = []
        return self._observation(), {"action_mask": self.action_masks()}

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Append one token; on the last one, evaluate the architecture."""
        sched = self.space.schedule()
        if not self._tokens and self._root_seed is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if len(self._tokens) >= len(sched):
            raise gym.error.ResetNeeded("the episode has ended; call reset() before step()")
        if not self.action_space.contains(action):
            raise InvalidActionError(f"action {action!r} is outside the action space Discrete({self._vocab})")
        spec = sched[len(self._tokens)]
        token = int(action)
        if token >= spec.num_choices:
            if self.strict_actions:
                raise InvalidActionError(
                    f"action {token} is masked at step {len(self._tokens)} ({spec.kind}): valid actions "
                    f"are 0..{spec.num_choices - 1} for choices {list(spec.choices)}"
                )
            token %= spec.num_choices
        self._tokens.append(token)
        if len(self._tokens) < len(sched):
            return self._observation(), 0.0, False, False, {"action_mask": self.action_masks()}
        reward, info = self._evaluate_tokens(self._tokens)
        info["action_mask"] = self.action_masks()
        return self._observation(), reward, True, False, info

    def render(self) -> str | None:
        """``"ansi"``: the tokens chosen so far (and the architecture once complete)."""
        if self.render_mode != "ansi":
            return None
        if len(self._tokens) == len(self.space.schedule()):
            return self.space.decode(self._tokens).to_str()
        return " ".join(
            f"{s.kind}={s.choices[t]}" for t, s in zip(self._tokens, self.space.schedule(), strict=False)
        )

    def close(self) -> None:
        """Close the results store connection and the evaluation backend."""
        self.store.close()
        self.backend.close()

    # ---- evaluation ---------------------------------------------------------------------------

    def evaluate_arch(self, arch: Any) -> tuple[float, dict[str, Any]]:
        """Score a complete architecture through the cache (what the last step does).

        Returns:
            The reward and the terminal ``info`` (without ``action_mask``).
        """
        _, reward, info = next(self.evaluate_archs([arch]))
        return reward, info

    def evaluate_archs(self, archs: Sequence[Any]) -> Iterator[tuple[int, float, dict[str, Any]]]:
        """Score several architectures at once, as ``step`` would, yielding each as it completes.

        Cache hits come first; the misses are all submitted to the backend before the first
        yield and come back as they finish (in parallel on the ``pool`` and ``ray`` backends). An
        architecture repeated in ``archs`` is trained once. Every attempt is stored.

        With a store file shared by several processes (vector envs, distributed replicas), a miss
        is claimed in the store before it is trained: one that another live process is training
        is waited for (polling the store every ``claim_poll_s``) and returned as cached, so each
        architecture is trained once across all of them.

        Yields:
            ``(index in archs, reward, terminal info)``.
        """
        store, fingerprint = self.store, self.evaluator.fingerprint
        hits: list[tuple[int, str, EvalResult]] = []
        todo: dict[str, list[int]] = {}  # architecture string -> its indices in archs
        pending: dict[str, Any] = {}  # not trained here yet: claimed elsewhere, or to claim
        for i, arch in enumerate(archs):
            arch_str = arch.to_str()
            hit = store.lookup(arch_str, fingerprint)
            if hit is not None:
                hits.append((i, arch_str, hit[0]))
            elif arch_str in todo:
                todo[arch_str].append(i)
            else:
                todo[arch_str], pending[arch_str] = [i], arch
        tickets: dict[int, str] = {}  # this call's children in flight -> their strings
        try:
            waiting = self._claim_and_submit(pending, tickets)
            for i, arch_str, result in hits:
                yield (i, *self._finish(arch_str, result, cached=True))
            while tickets or waiting:
                yield from self._harvest(tickets, todo, self.claim_poll_s if waiting else None)
                if waiting:  # between completions: claim what was given up, collect what others stored
                    waiting = self._claim_and_submit(waiting, tickets)
                    yield from self._results_from_elsewhere(waiting, todo)
        finally:  # claims of children this call will not finish (an error, an abandoned generator)
            for arch_str in tickets.values():
                store.release(arch_str, fingerprint)

    def _claim_and_submit(self, archs: dict[str, Any], tickets: dict[int, str]) -> dict[str, Any]:
        """Submit the architectures this env may train; return those another process trains now."""
        waiting = {}
        for arch_str, arch in archs.items():
            if self.store.claim(arch_str, self.evaluator.fingerprint) == "claimed":
                tickets[self.backend.submit(arch, child_seed(self._root_seed or 0, arch_str))] = arch_str
            else:  # "busy", or "done" since the first look (collected by the caller)
                waiting[arch_str] = arch
        return waiting

    def _harvest(
        self, tickets: dict[int, str], todo: dict[str, list[int]], timeout: float | None
    ) -> list[tuple[int, float, dict[str, Any]]]:
        """Store every child of this call that completes within ``timeout`` s; return their yields.

        All are stored (and their claims released) before any is yielded, so a caller that stops
        iterating loses nothing that was trained. With nothing in flight it sleeps ``timeout``.
        """
        if not tickets:
            time.sleep(timeout or 0.0)
            return []
        out = []
        fingerprint = self.evaluator.fingerprint
        for done in self.backend.harvest(timeout, tickets=tickets):
            arch_str = tickets.pop(done.ticket)
            for attempt in done.failed_attempts:  # workers that died: kept, never cached
                self.store.add(arch_str, fingerprint, attempt, FAILED_REWARD)
            first, *repeats = todo[arch_str]
            out.append((first, *self._finish(arch_str, done.result, cached=False)))
            self.store.release(arch_str, fingerprint)
            out += [(i, *self._finish(arch_str, done.result, cached=True)) for i in repeats]
        return out

    def _results_from_elsewhere(
        self, waiting: dict[str, Any], todo: dict[str, list[int]]
    ) -> list[tuple[int, float, dict[str, Any]]]:
        """Yields for waited-for architectures whose results other processes have stored."""
        out = []
        for arch_str in list(waiting):
            hit = self.store.lookup(arch_str, self.evaluator.fingerprint)
            if hit is not None:
                del waiting[arch_str]
                out += [(i, *self._finish(arch_str, hit[0], cached=True)) for i in todo[arch_str]]
        return out

    def _finish(self, arch_str: str, result: EvalResult, cached: bool) -> tuple[float, dict[str, Any]]:
        """Reward and terminal ``info`` of one result; a fresh result is stored."""
        reward = float(compute_reward(self.reward_fn, result))
        if not cached:
            self.store.add(arch_str, self.evaluator.fingerprint, result, reward)
        self.last_result = result
        info: dict[str, Any] = {
            "arch": arch_str,
            "cached": cached,
            "eval_status": result.status,
            "error": result.error,
            "num_params": result.num_params,
            "train_seconds": result.cost_s,
            "cost_s": result.cost_s,
            "seed": result.seed,
        }
        for name in self.evaluator.metric_names:
            info[name] = float(result.metrics.get(name, float("nan")))
        return reward, info

    def _evaluate_tokens(self, tokens: list[int]) -> tuple[float, dict[str, Any]]:
        return self.evaluate_arch(self.space.decode(tokens))

    def _observation(self) -> np.ndarray:
        obs = np.zeros(self._obs_dim, dtype=np.float32)
        n = len(self._tokens)
        if n:
            obs[np.arange(n) * self._vocab + np.asarray(self._tokens)] = 1.0
        offset = self._max_steps * self._vocab
        if n < len(self.space.schedule()):
            obs[offset + n] = 1.0
        obs[offset + self._max_steps + len(self.space.schedule())] = 1.0
        return obs
