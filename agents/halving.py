"""Successive halving over fidelities: many children cheaply, the best of them at more training.

Successive halving (Jamieson & Talwalkar, AISTATS 2016, https://arxiv.org/abs/1502.07943; the
inner loop of Hyperband, Li et al., JMLR 2018) wrapped around any search agent of this package:

- the *base* agent (``random``, ``reinforce``, ``evolution``...) proposes architectures and learns
  from their rewards at the env's own fidelity (rung 0), exactly as it would alone;
- after every ``bracket`` rung-0 evaluations, the best ``bracket // eta`` distinct ones are
  evaluated again at the next fidelity (rung 1), the best ``bracket // eta**2`` of those at rung 2,
  and so on, each rung an env made from the same registered id with one setting changed
  (``fidelity`` for trained envs, the reward column for NAS-Bench-201's table; see
  :meth:`~nas_env.envs.token_env.TokenNASEnv.fidelity_kwargs`).

Every evaluation, at every rung, comes from stepping an env, lands in the history (``info["rung"]``
and ``info["fidelity"]``) and in the env's results store: rung envs share its ``cache_path``, and
the evaluator fingerprint keeps the fidelities apart. The budget counts evaluations at all rungs.
The best architecture is the best at the highest rung reached (:meth:`rank_key`), never a rung-0
score compared with a rung-2 one.

>>> agent = make_agent("halving", env, seed=0, rungs=("paper",), base="reinforce")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import gymnasium as gym

from agents.base import AGENTS, AnyEnv, Evaluation, SearchAgent, TokenRunner, make_agent
from nas_env.envs.token_env import TokenNASEnv
from nas_env.errors import check_choice


@dataclass(frozen=True)
class HalvingConfig:
    """Settings of :class:`SuccessiveHalvingAgent`."""

    rungs: tuple[str, ...] = ()
    """Fidelities to promote to, cheapest first (rung 0 is the env's own): presets such as
    ``("paper",)`` for trained envs, table columns such as ``("cifar10_valid_acc_200ep",)`` for
    NAS-Bench-201's table. At least one."""
    eta: int = 3
    """Keep the best 1/eta at each rung (Hyperband's default, 3)."""
    bracket: int = 9
    """Rung-0 evaluations per bracket; rung ``k`` gets ``max(1, bracket // eta**k)`` of them."""
    base: str = "random"
    """The agent proposing rung-0 architectures (any name of ``agents.AGENTS`` but ``halving``)."""
    base_kwargs: dict[str, Any] = field(default_factory=dict)
    """Settings of the base agent."""

    def __post_init__(self) -> None:
        """Validate, naming the bad value."""
        if (
            isinstance(self.rungs, str)
            or not self.rungs
            or not all(isinstance(r, str) and r for r in self.rungs)
        ):
            raise ValueError(f"rungs={self.rungs!r} must be a non-empty sequence of fidelity names")
        object.__setattr__(self, "rungs", tuple(self.rungs))
        if not isinstance(self.eta, int) or self.eta < 2:
            raise ValueError(f"eta={self.eta!r} must be an integer >= 2")
        if not isinstance(self.bracket, int) or self.bracket < self.eta:
            raise ValueError(f"bracket={self.bracket!r} must be an integer >= eta={self.eta}")
        check_choice("base", self.base, [name for name in AGENTS if name != "halving"])

    def promotions(self) -> list[int]:
        """Architectures evaluated at rungs 1, 2, ... of each bracket."""
        return [max(1, self.bracket // self.eta**k) for k in range(1, len(self.rungs) + 1)]


class SuccessiveHalvingAgent(SearchAgent):
    """Successive halving over the env's fidelities around a base agent (see the module docstring).

    Args:
        env: A single (not vectorised) env made with ``gym.make``, so that rung envs can be made
            from its spec.
        seed: Root seed, shared by the base agent and the rung envs (same children, same seeds).
        **overrides: Fields of :class:`HalvingConfig`.

    Raises:
        ValueError: A bad setting, a vector env, or an env without a spec.
    """

    name = "halving"
    config_class = HalvingConfig
    config: HalvingConfig

    def __init__(self, env: AnyEnv, seed: int = 0, **overrides: Any) -> None:
        super().__init__(env, seed, **overrides)
        if isinstance(env, gym.vector.VectorEnv) or env.spec is None:
            raise ValueError(
                "successive halving needs a single env made with gym.make (it remakes it per rung)"
            )
        self.base = make_agent(self.config.base, env, seed=seed, **self.config.base_kwargs)
        spec, inner = env.spec, cast(TokenNASEnv, env.unwrapped)
        self._runners = {  # made now, so that a bad fidelity fails before any evaluation
            rung: TokenRunner(gym.make(spec.id, **{**spec.kwargs, **inner.fidelity_kwargs(name)}), seed)
            for rung, name in enumerate(self.config.rungs, 1)
        }
        self.bracket: list[list[tuple[str, float]]] = [[] for _ in range(len(self.config.rungs) + 1)]
        """This bracket's ``(arch, reward)`` at each rung, in evaluation order."""
        self._budget = 0

    def config_dict(self) -> dict[str, Any]:
        """The resolved settings, with the base agent's, for the run's ``config.json``."""
        return {**asdict(self.config), "base_config": self.base.config_dict()}

    def rank_key(self, evaluation: Evaluation) -> tuple[float, ...]:
        """Higher rungs first, then the reward: a rung-0 score never beats a promoted one."""
        return (float(evaluation.info.get("rung", 0)), evaluation.reward)

    # ---- the loop -----------------------------------------------------------------------------------

    def base_budget(self, budget: int) -> int:
        """Rung-0 evaluations in a run of ``budget`` evaluations at all rungs."""
        per_bracket = self.config.bracket + sum(self.config.promotions())
        full, rest = divmod(budget, per_bracket)
        return full * self.config.bracket + min(rest, self.config.bracket)

    def _search(self, budget: int) -> None:
        self._budget = budget
        self._promote()  # a bracket that a kill (or the last budget) interrupted while promoting
        self.base.search(self.base_budget(budget), callback=self._on_base_evaluation)

    def _on_base_evaluation(self, evaluation: Evaluation) -> None:
        assert len(self.history) < self._budget, "base_budget() leaves room for every rung-0 evaluation"
        self.bracket[0].append((evaluation.arch, evaluation.reward))
        self._record(evaluation.arch, evaluation.reward, {**evaluation.info, "rung": 0, "fidelity": "base"})
        self._promote()

    def _promote(self) -> None:
        """Evaluate this bracket's promotions still missing, if its rung 0 is complete."""
        if len(self.bracket[0]) < self.config.bracket:
            return
        for rung, count in enumerate(self.config.promotions(), 1):
            done = {arch for arch, _ in self.bracket[rung]}
            for arch in _top(self.bracket[rung - 1], count):
                if arch in done:
                    continue
                if len(self.history) >= self._budget:
                    return
                reward, info = self._evaluate_at(rung, arch)
                self.bracket[rung].append((arch, reward))
                self._record(arch, reward, {**info, "rung": rung, "fidelity": self.config.rungs[rung - 1]})
        self.bracket = [[] for _ in self.bracket]

    def _evaluate_at(self, rung: int, arch_str: str) -> tuple[float, dict[str, Any]]:
        """Score ``arch_str`` by stepping the rung's env through its tokens."""
        runner = self._runners[rung]
        env: Any = runner.env.unwrapped
        arch = env.space.parse(arch_str)
        if hasattr(arch, "num_layers"):  # depth is set by reset options, which resize env.space
            runner.set_num_layers(arch.num_layers)
        return runner.evaluate([env.space.encode(arch)])[0]

    def close(self) -> None:
        """Close the rung envs this agent made (the env it was given is the caller's)."""
        for runner in self._runners.values():
            runner.env.close()

    # ---- checkpoints --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The base agent's state, this bracket's results and the history."""
        return {
            "base": self.base.state_dict(),
            "bracket": [[list(item) for item in rung] for rung in self.bracket],
            "history": self._history_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.base.load_state_dict(state["base"])
        self.bracket = [[(str(a), float(r)) for a, r in rung] for rung in state["bracket"]]
        self._load_history(state["history"])


def _top(results: Sequence[tuple[str, float]], count: int) -> list[str]:
    """The ``count`` best distinct architectures (by their best reward; ties: the earliest)."""
    best: dict[str, float] = {}
    for arch, reward in results:
        best[arch] = max(reward, best.get(arch, float("-inf")))
    order = sorted(best, key=lambda a: -best[a])  # stable: earlier first among equals
    return order[:count]
