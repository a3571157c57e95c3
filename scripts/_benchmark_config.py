"""The settings of ``nas-benchmark``, shared by the runner (:mod:`scripts.benchmark`) and the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.base import AGENT_NAMES
from nas_env.errors import check_choice
from scripts._cli import TIME_BUDGET_CAP, UsageError


@dataclass(frozen=True)
class BenchmarkConfig:
    """Settings of one benchmark (each is a command-line flag)."""

    out: str | None = None
    """Output directory (created; runs.csv, summary.md, curves.png, config.json are overwritten)."""
    env: str = "NAS-Bench-201-v0"
    """Gymnasium env id; "module:Id" imports module first."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Env constructor arguments, e.g. table_path=nb201.csv reward_metric=cifar10_valid_acc_12ep."""
    policies: str = "reinforce,evolution,random"
    """Comma-separated search policies (see agents.AGENT_NAMES), or "all" for every registered one."""
    seeds: int = 3
    """Runs per policy, with seeds 0..N-1."""
    budget: int | None = None
    """Architectures per run (with --time-budget: the most a run may evaluate)."""
    time_budget: float | None = None
    """Simulated training seconds per run (needs an env reporting them: an NB201 table with train seconds)."""
    report_at: str | None = None
    """Budgets in summary.md, comma-separated (architectures, or seconds); default: 1/4, 1/2 and all."""
    report_key: str = "test_accuracy"
    """The info key reported in summary.md and curves.png; never a search signal."""
    agent_kwargs: dict[str, Any] = field(default_factory=dict)
    """Policy settings as POLICY.KEY=VALUE, e.g. reinforce.batch_size=16 (default: each policy's defaults)."""
    promote: str = ""
    """Successive halving around every policy: fidelities to promote to, cheapest first (on NB201's
    table a column, e.g. cifar10_valid_acc_200ep; trained envs a preset). Policies become POLICY+sh."""
    promote_eta: int = 3
    """Successive halving: keep the best 1/eta at each fidelity."""
    promote_bracket: int = 9
    """Successive halving: evaluations at the env's own fidelity between promotions."""
    workers: int = 0
    """Parallel processes; 0: one per CPU core (at most one per run); 1: all runs in this process."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        """Check the values that need no env, naming the bad one."""
        if not self.out:
            raise UsageError("--out DIR is required")
        for name in self.policy_list:
            check_choice("--policies entry", name, AGENT_NAMES)
        if len(set(self.policy_list)) != len(self.policy_list):
            raise UsageError(f"--policies {self.policies!r} names a policy twice")
        if self.seeds < 1 or self.workers < 0:
            raise UsageError(f"--seeds {self.seeds} must be >= 1 and --workers {self.workers} >= 0")
        if self.budget is None and self.time_budget is None:
            raise UsageError("give --budget N (architectures per run) or --time-budget SECONDS")
        if self.budget is not None and self.budget < 1:
            raise UsageError(f"--budget {self.budget} must be a positive number of architectures")
        if self.time_budget is not None and not self.time_budget > 0:
            raise UsageError(f"--time-budget {self.time_budget} must be a positive number of seconds")
        self.overrides()  # validates the keys
        self.checkpoints()

    @property
    def policy_list(self) -> tuple[str, ...]:
        """The policies, in the order given ("all": every registered policy, in registry order)."""
        if self.policies.strip() == "all":
            return AGENT_NAMES
        return tuple(p.strip() for p in self.policies.split(",") if p.strip())

    def promotion(self) -> dict[str, Any] | None:
        """The successive-halving settings of ``--promote*``, or None without ``--promote``."""
        if not self.promote:
            return None
        rungs = tuple(r.strip() for r in self.promote.split(",") if r.strip())
        return {"rungs": rungs, "eta": self.promote_eta, "bracket": self.promote_bracket}

    @property
    def max_evaluations(self) -> int:
        """Architectures a run evaluates at most."""
        return self.budget if self.budget is not None else TIME_BUDGET_CAP

    def overrides(self) -> dict[str, dict[str, Any]]:
        """``--agent-kwargs`` split per policy.

        Raises:
            UsageError: A key without a ``POLICY.`` prefix or naming a policy not benchmarked.
        """
        out: dict[str, dict[str, Any]] = {p: {} for p in self.policy_list}
        for key, value in self.agent_kwargs.items():
            policy, sep, setting = key.partition(".")
            if not sep or policy not in out:
                raise UsageError(
                    f"--agent-kwargs {key}={value!r}: keys are POLICY.KEY with POLICY one of "
                    f"{list(self.policy_list)}, e.g. reinforce.batch_size=16"
                )
            out[policy][setting] = value
        return out

    def checkpoints(self) -> list[float]:
        """The budgets reported in summary.md (architectures, or seconds with a time budget)."""
        limit = float(self.time_budget if self.time_budget is not None else self.max_evaluations)
        if not self.report_at:
            if self.time_budget is not None:
                return [limit / 4, limit / 2, limit]
            return sorted({max(1.0, float(int(limit) // 4)), max(1.0, float(int(limit) // 2)), limit})
        try:
            points = sorted({float(x) for x in self.report_at.split(",")})
        except ValueError as exc:
            raise UsageError(f"--report-at {self.report_at!r} must be comma-separated numbers") from exc
        if points[0] <= 0 or points[-1] > limit:
            raise UsageError(f"--report-at {self.report_at!r}: each budget must be in (0, {limit:g}]")
        return points
