"""Model-guided local search: Thompson sampling from a Bayesian linear model, then hill climbing.

A search policy for small budgets (about 100 architectures), written for this package; its parts
are standard:

1. **Random start** (``initial_random`` architectures, uniformly drawn, none twice). With
   ``start_score`` the first of them is a **zero-cost optimum** instead: from a random
   architecture, steepest-ascent hill climbing on a zero-cost score of the untrained network
   (:mod:`nas_env.zero_cost`; no training, each score computed once and kept in
   ``screen_cache``) until no one-token change scores higher. This is the zero-cost warm start
   of Abdelfattah et al. ("Zero-cost proxies for lightweight NAS", ICLR 2021), reached by a
   climb rather than by scoring the whole space.
2. **Thompson sampling** (until ``model_samples`` architectures in all): a Bayesian linear
   regression of the (standardised) reward on the one-hot tokens, i.e. one additive value per
   (step, choice), as in BOCS / COMBO's first-order models (Baptista & Poloczek 2018; Oh et al.
   2019). Each proposal draws one weight vector from the posterior and evaluates the unseen
   architecture it rates best. This finds the good value of each token in a few dozen rewards.
3. **Local search** (the rest of the budget): hill climbing over one-token changes, the policy
   White et al. found state of the art on NAS benchmarks ("Local search is state of the art for
   NAS benchmarks", 2020), started from the best architecture so far. The neighbours of the
   incumbent are tried in the order a fresh posterior draw rates them (or at random). With
   ``improvement="first"`` the first better one becomes the incumbent; with ``"best"`` (steepest
   ascent, White et al.'s variant) every neighbour is tried and the best of them is climbed to.
   When every neighbour has been seen, the climb restarts from the best architecture that still
   has unseen neighbours.

No architecture is evaluated twice (a repeat would spend budget on a known reward). The additive
model sets the direction; the climb resolves the interactions between tokens that it cannot
express. With ``model_samples=initial_random`` and ``neighbour_order="random"`` this is plain
local search. The defaults were chosen on NB201's CIFAR-10 column once and are used unchanged
on every env and dataset (docs/nb201.md gives the figures and the check on other columns).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import AnyEnv, AskTellAgent
from agents.screen import ZeroCostScreen, space_of
from nas_env import zero_cost as zc
from nas_env.errors import check_choice
from nas_env.records import TokenSpec

Tokens = tuple[int, ...]


@dataclass(frozen=True)
class LocalSearchConfig:
    """Settings of model-guided local search (see the module docstring)."""

    initial_random: int = 5
    """Architectures drawn uniformly before the model is used (the first is the zero-cost optimum
    when ``start_score`` is set). With one, the model's first draw comes from its prior."""
    model_samples: int = 50
    """Architectures proposed before local search starts, the random ones included (Thompson
    sampling proposes ``model_samples - initial_random``)."""
    noise_variance: float = 1.0
    """Noise variance of the Bayesian linear model, in units of the rewards' variance (prior
    variance of each weight: 1). Large values keep the posterior wide, so draws explore."""
    neighbour_order: str = "model"
    """Order in which the incumbent's neighbours are tried: "model" (a posterior draw rates them)
    or "random" (White et al.'s local search)."""
    improvement: str = "first"
    """How the climb moves: "first" (to the first neighbour better than the incumbent) or "best"
    (after trying every neighbour of the incumbent, to the best one, if it is better)."""
    start_score: str | None = None
    """A zero-cost score (:data:`nas_env.zero_cost.ALL_SCORES`) whose hill-climbed optimum is the
    first architecture evaluated; None: the first is random."""
    screen_cache: str | None = None
    """SQLite store of the zero-cost scores, shared between runs (None: kept for this run only)."""
    enumerate_limit: int = 100_000
    """Spaces with at most this many architectures are scored whole; larger ones through a pool."""
    pool_size: int = 2_000
    """Random architectures in the candidate pool of large spaces (plus the model's favourite and
    the neighbours of the best five architectures)."""

    def __post_init__(self) -> None:
        """Validate, naming the bad value and the allowed range."""
        for name in ("initial_random", "model_samples", "enumerate_limit", "pool_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        if self.model_samples < self.initial_random:
            raise ValueError(
                f"model_samples={self.model_samples} must be >= initial_random={self.initial_random}"
            )
        if not self.noise_variance > 0:
            raise ValueError(f"noise_variance={self.noise_variance!r} must be positive")
        check_choice("neighbour_order", self.neighbour_order, ("model", "random"))
        check_choice("improvement", self.improvement, ("first", "best"))
        if self.start_score is not None:
            zc.check_score(self.start_score)


# ---- the model ---------------------------------------------------------------------------------------


class AdditiveModel:
    """Bayesian linear regression of standardised rewards on one-hot tokens (prior N(0, I)).

    Args:
        num_choices: Choices of each step of the schedule.
        noise_variance: See :attr:`LocalSearchConfig.noise_variance`.
    """

    def __init__(self, num_choices: list[int], noise_variance: float) -> None:
        self.offsets = np.concatenate([[0], np.cumsum(num_choices)[:-1]]).astype(np.int64)
        self.dim = int(sum(num_choices))
        self.noise_variance = noise_variance

    def features(self, tokens: np.ndarray) -> np.ndarray:
        """One-hot rows, ``(n, dim)``, of an ``(n, steps)`` token array."""
        out = np.zeros((len(tokens), self.dim))
        np.put_along_axis(out, tokens + self.offsets, 1.0, axis=1)
        return out

    def draw(self, tokens: np.ndarray, rewards: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One weight vector from the posterior given the evaluated ``tokens`` and ``rewards``."""
        std = float(rewards.std())
        z = (rewards - rewards.mean()) / (std if std > 0 else 1.0)
        f = self.features(tokens)
        precision = f.T @ f / self.noise_variance + np.eye(self.dim)
        cov = np.linalg.inv(precision)
        cov = (cov + cov.T) / 2
        mean = cov @ f.T @ z / self.noise_variance
        return mean + np.linalg.cholesky(cov) @ rng.standard_normal(self.dim)

    def score(self, weights: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """The model's value of each row of ``tokens`` under ``weights``."""
        return weights[tokens + self.offsets].sum(axis=1)


def neighbours(tokens: Tokens, schedule: tuple[TokenSpec, ...]) -> list[Tokens]:
    """Every sequence that differs from ``tokens`` in exactly one step, in step and value order."""
    out = []
    for step, spec in enumerate(schedule):
        for value in range(spec.num_choices):
            if value != tokens[step]:
                out.append((*tokens[:step], value, *tokens[step + 1 :]))
    return out


# ---- the agent -----------------------------------------------------------------------------------------


class LocalSearchAgent(AskTellAgent):
    """Model-guided local search: random (or zero-cost) start, Thompson sampling, then hill climbing.

    See the module docstring for the algorithm and its sources. On a vector env of ``n`` sub-envs,
    ``n`` proposals are made before their rewards are known (distinct draws, or the next ``n``
    neighbours) and evaluated together.

    Args:
        env: A token env of this package (wrapped or vectorised).
        seed: Root seed of the agent's generator and of ``env.reset(seed=...)``.
        **overrides: Fields of :class:`LocalSearchConfig`.
    """

    name = "local_search"
    config_class = LocalSearchConfig
    config: LocalSearchConfig

    def __init__(self, env: AnyEnv, seed: int = 0, **overrides: Any) -> None:
        super().__init__(env, seed, **overrides)
        self.rng = self.numpy_rng()
        self.schedule = self.runner.schedule()
        sizes = [spec.num_choices for spec in self.schedule]
        self.model = AdditiveModel(sizes, self.config.noise_variance)
        self.space_size = math.prod(sizes)
        self._all: np.ndarray | None = None  # every architecture, when the space is small enough
        self.evaluated: list[tuple[Tokens, float]] = []
        self.seen: set[Tokens] = set()
        self.incumbent: tuple[Tokens, float] | None = None
        self.queue: list[Tokens] | None = None  # the incumbent's neighbours still to try, in order
        self.screen = (
            None
            if self.config.start_score is None
            else ZeroCostScreen(space_of(env), self.config.start_score, self.config.screen_cache)
        )

    # ---- proposals -----------------------------------------------------------------------------------

    def propose(self, count: int) -> Sequence[Sequence[int]]:
        """The next ``count`` distinct architectures to evaluate (none seen before, while any is left)."""
        batch: list[Tokens] = []
        for _ in range(count):
            taken = self.seen.union(batch)
            done = len(self.evaluated) + len(batch)
            if len(taken) >= self.space_size:
                tokens = self._random(set())  # everything seen: a repeat is all that is left
            elif done == 0 and self.screen is not None:
                tokens = self._zero_cost_optimum()
            elif done < self.config.initial_random:
                tokens = self._random(taken)
            elif done < self.config.model_samples:
                tokens = self._thompson(taken)
            else:
                tokens = self._next_neighbour(taken)
            batch.append(tokens)
        return [list(t) for t in batch]

    def _random(self, taken: set[Tokens]) -> Tokens:
        while True:
            tokens = tuple(int(self.rng.integers(spec.num_choices)) for spec in self.schedule)
            if tokens not in taken:
                return tokens

    def _zero_cost_optimum(self) -> Tokens:
        """Steepest ascent on the zero-cost score from a random architecture, to a local optimum."""
        assert self.screen is not None
        current = self._random(set())
        while True:
            best = tuple(self.screen.best(neighbours(current, self.schedule)))  # the first of equals
            if not self.screen.score(best) > self.screen.score(current):  # scores are memoised
                return current
            current = best

    def _draw(self) -> np.ndarray:
        tokens = np.array([t for t, _ in self.evaluated], dtype=np.int64)
        rewards = np.array([r for _, r in self.evaluated], dtype=np.float64)
        return self.model.draw(tokens, rewards, self.rng)

    def _candidates(self, weights: np.ndarray) -> np.ndarray:
        """The whole space when small, else a pool: random draws, the model's favourite, neighbours."""
        if self.space_size <= self.config.enumerate_limit:
            if self._all is None:
                sizes = [spec.num_choices for spec in self.schedule]
                self._all = np.stack(np.unravel_index(np.arange(self.space_size), sizes), axis=1)
            return self._all
        pool = [self._random(set()) for _ in range(self.config.pool_size)]
        favourite = tuple(
            int(np.argmax(weights[o : o + s.num_choices]))
            for o, s in zip(self.model.offsets, self.schedule, strict=True)
        )
        pool += [favourite, *neighbours(favourite, self.schedule)]
        for tokens, _ in sorted(self.evaluated, key=lambda e: -e[1])[:5]:
            pool += neighbours(tokens, self.schedule)
        return np.array(pool, dtype=np.int64)

    def _thompson(self, taken: set[Tokens]) -> Tokens:
        weights = self._draw()
        candidates = self._candidates(weights)
        order = np.argsort(-self.model.score(weights, candidates), kind="stable")
        for i in order:
            tokens = tuple(int(t) for t in candidates[i])
            if tokens not in taken:
                return tokens
        return self._random(taken)

    def _next_neighbour(self, taken: set[Tokens]) -> Tokens:
        while True:
            if self.queue is None:
                self._restart(taken)
            assert self.queue is not None
            while self.queue:
                tokens = self.queue.pop(0)
                if tokens not in taken:
                    return tokens
            self.queue = None  # a local optimum (or all its neighbours proposed): restart
            if self.incumbent is None:
                return self._random(taken)

    def _restart(self, taken: set[Tokens]) -> None:
        """Climb from the best architecture with unseen neighbours (or the current incumbent)."""
        if self.incumbent is None or not any(
            n not in taken for n in neighbours(self.incumbent[0], self.schedule)
        ):
            self.incumbent = None
            for tokens, reward in sorted(self.evaluated, key=lambda e: -e[1]):
                if any(n not in taken for n in neighbours(tokens, self.schedule)):
                    self.incumbent = (tokens, reward)
                    break
        if self.incumbent is None:
            self.queue = []
            return
        queue = [n for n in neighbours(self.incumbent[0], self.schedule) if n not in taken]
        if self.config.neighbour_order == "random":
            self.queue = [queue[int(i)] for i in self.rng.permutation(len(queue))]
        else:
            values = self.model.score(self._draw(), np.array(queue, dtype=np.int64))
            self.queue = [queue[int(i)] for i in np.argsort(-values, kind="stable")]

    # ---- learning ----------------------------------------------------------------------------------

    def observe(self, tokens: Sequence[int], reward: float, info: dict[str, Any]) -> None:
        """Add the reward to the model's data; in a first-improvement climb, a better one is moved to.

        A best-improvement climb moves when the incumbent's queue is spent: :meth:`_restart` then
        takes the best architecture with unseen neighbours, which is the best neighbour when it beat
        the incumbent.
        """
        tokens = tuple(int(t) for t in tokens)
        self.evaluated.append((tokens, reward))
        self.seen.add(tokens)
        if (
            self.config.improvement == "first"
            and len(self.evaluated) > self.config.model_samples
            and (self.incumbent is None or reward > self.incumbent[1])
        ):
            self.incumbent, self.queue = (tokens, reward), None  # first improvement: move

    # ---- checkpoints ---------------------------------------------------------------------------------

    def algorithm_state(self) -> dict[str, Any]:
        """Generator, evaluated architectures, incumbent and its queue."""
        return {
            "rng": self.rng.bit_generator.state,
            "evaluated": [(list(t), r) for t, r in self.evaluated],
            "incumbent": None if self.incumbent is None else (list(self.incumbent[0]), self.incumbent[1]),
            "queue": None if self.queue is None else [list(t) for t in self.queue],
        }

    def load_algorithm_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`algorithm_state`."""
        self.rng.bit_generator.state = state["rng"]
        self.evaluated = [(tuple(int(x) for x in t), float(r)) for t, r in state["evaluated"]]
        self.seen = {t for t, _ in self.evaluated}
        incumbent = state["incumbent"]
        self.incumbent = (
            None if incumbent is None else (tuple(int(x) for x in incumbent[0]), float(incumbent[1]))
        )
        queue = state["queue"]
        self.queue = None if queue is None else [tuple(int(x) for x in t) for t in queue]
