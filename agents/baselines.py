"""Search baselines: random search and regularized evolution, behind the :class:`SearchAgent` interface.

Both draw tokens from the env's token schedule with their own NumPy generator and score them by
stepping the env, so they run on every env of this package. Their whole state (generator,
population, history) goes into a checkpoint, so a killed run resumes exactly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from agents.base import AnyEnv, SearchAgent, TokenRunner, check_overrides
from nas_env.type_aliases import TokenSpec


def sample_tokens(schedule: tuple[TokenSpec, ...], rng: np.random.Generator) -> list[int]:
    """A uniformly random valid token sequence for ``schedule``."""
    return [int(rng.integers(spec.num_choices)) for spec in schedule]


class RandomSearchAgent(SearchAgent):
    """Random search: every architecture drawn uniformly, token by token.

    The strong baseline of Li & Talwalkar (2019) and Yu et al. (2020); no settings.
    """

    name = "random"

    def __init__(self, env: AnyEnv, seed: int = 0, **overrides: Any) -> None:
        check_overrides(self.name, overrides, ())
        super().__init__(env, seed, **overrides)
        self.rng = np.random.default_rng(np.random.SeedSequence(self.seed).spawn(1)[0])
        self.runner = TokenRunner(env, self.seed)
        self.pending: list[list[int]] = []  # drawn, not yet evaluated (one per sub-env of a vector env)

    def _search(self, budget: int) -> None:
        schedule = self.runner.schedule()
        while len(self.history) < budget:
            if not self.pending:
                self.pending = [sample_tokens(schedule, self.rng) for _ in range(self.runner.num_envs)]
            chunk = self.pending[: budget - len(self.history)]
            for reward, info in self.runner.evaluate(chunk):
                self.pending.pop(0)
                self._record(info["arch"], reward, info)

    def state_dict(self) -> dict[str, Any]:
        """Generator state, drawn-but-unevaluated sequences and history."""
        return {
            "rng": self.rng.bit_generator.state,
            "pending": self.pending,
            "history": self._history_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.rng.bit_generator.state = state["rng"]
        self.pending = [list(t) for t in state["pending"]]
        self._load_history(state["history"])


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


class RegularizedEvolutionAgent(SearchAgent):
    """Regularized (aging) evolution (Real et al., AAAI 2019, https://arxiv.org/abs/1802.01548).

    The first ``population_size`` architectures are random. Afterwards each cycle samples
    ``tournament_size`` members (with replacement), copies the best, changes one token to another
    valid value
    (the mutation), evaluates the child, adds it and removes the *oldest* member. On a vector env
    of ``n`` sub-envs, ``n`` children are proposed from the same population and evaluated together.

    Args:
        env: Env to search.
        seed: Root seed.
        **overrides: Fields of :class:`EvolutionConfig`.
    """

    name = "evolution"

    def __init__(self, env: AnyEnv, seed: int = 0, **overrides: Any) -> None:
        check_overrides(self.name, overrides, [f.name for f in fields(EvolutionConfig)])
        super().__init__(env, seed, **overrides)
        self.config = EvolutionConfig(**overrides)
        self.rng = np.random.default_rng(np.random.SeedSequence(self.seed).spawn(1)[0])
        self.runner = TokenRunner(env, self.seed)
        self.population: deque[tuple[list[int], float]] = deque()
        self.pending: list[list[int]] = []  # proposed, not yet evaluated

    def config_dict(self) -> dict[str, Any]:
        """The resolved settings, for the run's ``config.json``."""
        return asdict(self.config)

    def propose(self, schedule: tuple[TokenSpec, ...]) -> list[int]:
        """The next architecture to evaluate: random while the population fills, else a mutant."""
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

    def _search(self, budget: int) -> None:
        schedule = self.runner.schedule()
        while len(self.history) < budget:
            if not self.pending:
                self.pending = [self.propose(schedule) for _ in range(self.runner.num_envs)]
            chunk = self.pending[: budget - len(self.history)]
            for reward, info in self.runner.evaluate(chunk):
                self.population.append((self.pending.pop(0), float(reward)))
                if len(self.population) > self.config.population_size:
                    self.population.popleft()  # aging: the oldest dies, not the worst
                self._record(info["arch"], reward, info)

    def state_dict(self) -> dict[str, Any]:
        """Generator state, population (oldest first) and history."""
        return {
            "rng": self.rng.bit_generator.state,
            "population": [(list(t), r) for t, r in self.population],
            "pending": self.pending,
            "history": self._history_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.rng.bit_generator.state = state["rng"]
        self.population = deque((list(t), float(r)) for t, r in state["population"])
        self.pending = [list(t) for t in state["pending"]]
        self._load_history(state["history"])
