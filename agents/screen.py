"""A zero-cost first screen for any ask/tell search: score many proposals untrained, evaluate the best.

For every real evaluation the wrapper asks its base agent ``screen_candidates`` times for its next
proposal, scores their untrained networks with a zero-cost proxy (:mod:`nas_env.zero_cost`; default
``live_params``, one float64 pass of batch 1) and sends only the best to the env (the best not
evaluated yet, when there is one). The base agent is told the reward of the architecture it got;
the proposals screened out are never told (for local search they are dropped, as rejected
neighbours are; random search and evolution keep no record of proposals). So the budget counts
real evaluations only; the zero-cost scores are extra CPU work, each computed once per
architecture (with weights seeded by :data:`SCREEN_SEED`, so a score does not depend on the
search's seed) and kept across runs in ``screen_cache``, a results store.
Scoring uses one torch thread: batch-1 networks gain nothing from more, and lose much on a busy CPU.

This is the zero-cost paper's warm-up and NASWOT's AREA (score a pool, evaluate the best) applied
at every step. ``screened_local_search``, ``screened_random`` and ``screened_evolution`` are the
wrapper with its ``base`` preset; figures in ``docs/zero_cost.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym

from agents.base import AnyEnv, AskTellAgent, make_agent
from nas_env import zero_cost as zc
from nas_env.errors import check_choice
from nas_env.evaluators.zero_cost import ZeroCostEvaluator
from nas_env.store import ResultsStore
from nas_env.threads import torch_threads

SPACE_KINDS = {"cnn": "cnn", "nb201": "nb201", "rnn-cell": "ptb"}
"""Search-space name to the zero-cost evaluator's space."""
SCREEN_SEED = 0
"""Weights seed of every screened network."""
SCREENABLE = ("local_search", "random", "evolution")
"""Base agents whose proposals may go unanswered (the REINFORCE agents learn from each proposal's
log-probability, the SB3 agents and halving run their own loop)."""


@dataclass(frozen=True)
class ScreenConfig:
    """Settings of :class:`ScreenedAgent`."""

    base: str = "local_search"
    """The agent whose proposals are screened (one of :data:`SCREENABLE`)."""
    base_kwargs: dict[str, Any] = field(default_factory=dict)
    """Settings of the base agent."""
    screen_candidates: int = 20
    """Proposals scored zero-cost per real evaluation; the best one is evaluated."""
    screen_score: str = "live_params"
    """The zero-cost score (:data:`nas_env.zero_cost.ALL_SCORES`)."""
    screen_cache: str | None = None
    """SQLite store of the zero-cost scores, shared between runs (None: kept for this run only)."""

    def __post_init__(self) -> None:
        """Validate, naming the bad value and the allowed ones."""
        check_choice("base", self.base, SCREENABLE)
        value = self.screen_candidates
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"screen_candidates={value!r} must be a positive integer")
        zc.check_score(self.screen_score)


def space_of(env: AnyEnv) -> Any:
    """The search space of a token env of this package (wrapped or vectorised)."""
    if isinstance(env, gym.vector.VectorEnv):
        return env.get_attr("space")[0]  # type: ignore[attr-defined]
    return env.unwrapped.space  # type: ignore[attr-defined]


class ZeroCostScreen:
    """Zero-cost scores of an env's architectures, each computed once.

    Raises:
        ValueError: The env's space has no zero-cost networks, or the score is not defined for it.
    """

    def __init__(self, space: Any, score: str, cache: str | None) -> None:
        """Build the zero-cost evaluator of ``space`` (a search space of this package)."""
        check_choice("search space", space.name, SPACE_KINDS)
        self.space = space
        self.evaluator = ZeroCostEvaluator(SPACE_KINDS[space.name], score, device="cpu")
        self.key = f"{self.evaluator.fingerprint}:s{SCREEN_SEED}"
        self.store = ResultsStore(cache) if cache else None
        self.memo: dict[str, float] = {}
        self.computed = 0
        """Scores computed (not found in the cache) by this object."""

    def score(self, tokens: Sequence[int]) -> float:
        """The zero-cost score of the architecture of ``tokens`` (``-inf``: nothing flows through it)."""
        arch = self.space.decode(list(tokens))
        name = arch.to_str()
        if name not in self.memo:
            found = self.store.lookup(name, self.key) if self.store is not None else None
            if found is None:
                with torch_threads(1):
                    result = self.evaluator.evaluate(arch, SCREEN_SEED)
                self.computed += 1
                if self.store is not None:
                    self.store.add(name, self.key, result, result.metrics.get("zero_cost", -math.inf))
            else:
                result = found[0]
            value = result.metrics.get("zero_cost", -math.inf) if result.status == "ok" else -math.inf
            self.memo[name] = float(value)
        return self.memo[name]

    def best(
        self, candidates: Sequence[Sequence[int]], evaluated: set[str] | frozenset[str] = frozenset()
    ) -> list[int]:
        """The candidate with the highest score, preferring any not in ``evaluated``.

        ``evaluated`` holds architecture strings: a repeat would spend a real evaluation on a known
        reward. Among equals, the first.
        """
        names = [self.space.decode(list(t)).to_str() for t in candidates]
        keys = [(names[i] not in evaluated, self.score(t), -i) for i, t in enumerate(candidates)]
        return list(candidates[max(range(len(keys)), key=keys.__getitem__)])


class ScreenedAgent(AskTellAgent):
    """A base agent behind a zero-cost screen (see the module docstring).

    Args:
        env: A token env of this package.
        seed: Root seed (the base agent gets the same).
        **overrides: Fields of :class:`ScreenConfig`.
    """

    name = "screened"
    config_class = ScreenConfig
    config: ScreenConfig

    def __init__(self, env: AnyEnv, seed: int = 0, **overrides: Any) -> None:
        super().__init__(env, seed, **overrides)
        inner = make_agent(self.config.base, env, seed=seed, **self.config.base_kwargs)
        assert isinstance(inner, AskTellAgent)  # every SCREENABLE agent is
        self.inner: AskTellAgent = inner
        self.screen = ZeroCostScreen(space_of(env), self.config.screen_score, self.config.screen_cache)

    def config_dict(self) -> dict[str, Any]:
        """The screen's settings, with the base agent's."""
        return {**asdict(self.config), "base_config": self.inner.config_dict()}

    def propose(self, count: int) -> Sequence[Sequence[int]]:
        """``count`` architectures, each the best-screened of ``screen_candidates`` base proposals."""
        n = self.config.screen_candidates
        evaluated = {e.arch for e in self.history} | {
            self.screen.space.decode(t).to_str() for t in self.pending
        }
        batch: list[list[int]] = []
        for _ in range(count):
            # one proposal at a time, as the base would make it for its next evaluation (local search's
            # random start stays random, Thompson draws are fresh, neighbours come off the queue in order)
            best = self.screen.best([self.inner.propose(1)[0] for _ in range(n)], evaluated)
            evaluated.add(self.screen.space.decode(best).to_str())
            batch.append(best)
        return batch

    def observe(self, tokens: Sequence[int], reward: float, info: dict[str, Any]) -> None:
        """Tell the base agent the reward of the architecture it got."""
        self.inner.observe(tokens, reward, info)

    def algorithm_state(self) -> dict[str, Any]:
        """The base agent's state."""
        return {"inner": self.inner.algorithm_state()}

    def load_algorithm_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`algorithm_state`."""
        self.inner.load_algorithm_state(state["inner"])


class ScreenedLocalSearchAgent(ScreenedAgent):
    """Model-guided local search behind the zero-cost screen."""

    name = "screened_local_search"


@dataclass(frozen=True)
class ScreenedRandomConfig(ScreenConfig):
    """:class:`ScreenConfig` with random search as the base."""

    base: str = "random"


class ScreenedRandomAgent(ScreenedAgent):
    """Random search behind the zero-cost screen."""

    name = "screened_random"
    config_class = ScreenedRandomConfig


@dataclass(frozen=True)
class ScreenedEvolutionConfig(ScreenConfig):
    """:class:`ScreenConfig` with regularized evolution as the base."""

    base: str = "evolution"


class ScreenedEvolutionAgent(ScreenedAgent):
    """Regularized evolution behind the zero-cost screen."""

    name = "screened_evolution"
    config_class = ScreenedEvolutionConfig
