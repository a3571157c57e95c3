"""Search baselines: random search and regularized evolution, behind the :class:`SearchAgent` interface.

Both draw tokens from the env's token schedule with their own NumPy generator and score them by
stepping the env, so they run on every env of this package. Their whole state (generator,
population, history) goes into a checkpoint, so a killed run resumes exactly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import AnyEnv, AskTellAgent
from nas_env.records import TokenSpec


def sample_tokens(schedule: tuple[TokenSpec, ...], rng: np.random.Generator) -> list[int]:
    """A uniformly random valid token sequence for ``schedule``."""
    return [int(rng.integers(spec.num_choices)) for spec in schedule]


class RandomSearchAgent(AskTellAgent):
    """Random search: every architecture drawn uniformly, token by token.

    The strong baseline of Li & Talwalkar (2019) and Yu et al. (2020); no settings.
    """

    name = "random"

    def __init__(self, env: AnyEnv, seed: int = 0, **overrides: Any) -> None:
        super().__init__(env, seed, **overrides)
        self.rng = self.numpy_rng()

    def propose(self, count: int) -> Sequence[Sequence[int]]:
        """``count`` uniformly random sequences."""
        schedule = self.runner.schedule()
        return [sample_tokens(schedule, self.rng) for _ in range(count)]

    def observe(self, tokens: Sequence[int], reward: float, info: dict[str, Any]) -> None:
        """Random search learns nothing."""

    def algorithm_state(self) -> dict[str, Any]:
        """The generator's state."""
        return {"rng": self.rng.bit_generator.state}

    def load_algorithm_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`algorithm_state`."""
        self.rng.bit_generator.state = state["rng"]


@dataclass(frozen=True)
class EvolutionConfig:
    """Settings of regularized evolution (Real et al., AAAI 2019, "aging evolution").

    The defaults are NAS-Bench-201's REA (Dong & Yang, ICLR 2020, section 5 and
    ``scripts-search/NAS-Bench-201-algos/R-EA.sh``; NATS-Bench's ``exps/NATS-algos/run-all.sh``
    keeps them): population 10, tournament 3. They suit budgets of about 100 architectures:
    with Real et al.'s NAS-Bench-101 values (P = 100, S = 25) the random initial population
    alone fills a 100-architecture budget, so evolution never starts and the run *is* random
    search. With P = 10, mutation starts after 10 architectures and 90 of 100 are children.
    Larger budgets (thousands) may prefer larger populations: ``population_size=100
    tournament_size=25`` restores Real et al.'s.
    """

    population_size: int = 10
    """Architectures kept alive (NB201: 10; Real et al. on NAS-Bench-101: 100)."""
    tournament_size: int = 3
    """Members drawn (with replacement, as Real et al.'s Algorithm 1 and NB201) per tournament;
    the best is the parent (NB201: 3; Real et al.: 25)."""

    def __post_init__(self) -> None:
        """Validate, naming the bad value."""
        if self.population_size < 2:
            raise ValueError(f"population_size={self.population_size} must be at least 2")
        if not 1 <= self.tournament_size <= self.population_size:
            raise ValueError(
                f"tournament_size={self.tournament_size} must be in [1, population_size="
                f"{self.population_size}]"
            )


class RegularizedEvolutionAgent(AskTellAgent):
    """Regularized (aging) evolution (Real et al., AAAI 2019, https://arxiv.org/abs/1802.01548).

    The first ``population_size`` architectures are random. Afterwards each cycle samples
    ``tournament_size`` members (with replacement), copies the best, changes one token to another
    valid value (the mutation), evaluates the child, adds it and removes the *oldest* member. On a
    vector env of ``n`` sub-envs, ``n`` children are proposed from the same population and
    evaluated together.

    Args:
        env: Env to search.
        seed: Root seed.
        **overrides: Fields of :class:`EvolutionConfig`.
    """

    name = "evolution"
    config_class = EvolutionConfig
    config: EvolutionConfig

    def __init__(self, env: AnyEnv, seed: int = 0, **overrides: Any) -> None:
        super().__init__(env, seed, **overrides)
        self.rng = self.numpy_rng()
        self.population: deque[tuple[list[int], float]] = deque()

    def propose(self, count: int) -> Sequence[Sequence[int]]:
        """``count`` architectures: random while the population fills, else mutants of tournament winners."""
        schedule = self.runner.schedule()
        return [self._propose_one(schedule) for _ in range(count)]

    def _propose_one(self, schedule: tuple[TokenSpec, ...]) -> list[int]:
        if len(self.population) < self.config.population_size:
            return sample_tokens(schedule, self.rng)
        picks = self.rng.integers(len(self.population), size=self.config.tournament_size)
        parent = max((self.population[int(i)] for i in picks), key=lambda member: member[1])[0]
        return self.mutate(parent, schedule)

    def mutate(self, tokens: list[int], schedule: tuple[TokenSpec, ...]) -> list[int]:
        """Change one token (among those with more than one choice) to a different valid value."""
        child = list(tokens)
        positions = [i for i, spec in enumerate(schedule) if spec.num_choices > 1]
        if not positions:
            return child
        pos = positions[int(self.rng.integers(len(positions)))]
        shift = 1 + int(self.rng.integers(schedule[pos].num_choices - 1))
        child[pos] = (child[pos] + shift) % schedule[pos].num_choices
        return child

    def observe(self, tokens: Sequence[int], reward: float, info: dict[str, Any]) -> None:
        """The child joins the population; the oldest member dies (aging, not the worst)."""
        self.population.append((list(tokens), float(reward)))
        if len(self.population) > self.config.population_size:
            self.population.popleft()

    def algorithm_state(self) -> dict[str, Any]:
        """Generator state and population (oldest first)."""
        return {"rng": self.rng.bit_generator.state, "population": [(list(t), r) for t, r in self.population]}

    def load_algorithm_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`algorithm_state`."""
        self.rng.bit_generator.state = state["rng"]
        self.population = deque((list(t), float(r)) for t, r in state["population"])
