r"""Benchmark search policies: every policy x seed on one env, into runs.csv, summary.md and curves.png.

Example, on a NAS-Bench-201 table (see docs/nb201.md for the schema)::

    nas-benchmark --env NAS-Bench-201-v0 --env-kwargs table_path=nb201.csv \
        --policies reinforce,evolution,random --seeds 5 --budget 200 --out bench/nb201
    nas-benchmark --env NAS-Bench-201-v0 --env-kwargs table_path=nb201.csv \
        --policies reinforce,random --seeds 5 --time-budget 20000 --out bench/nb201_time

Each run (policy, seed) evaluates ``--budget`` architectures, or as many as fit in
``--time-budget`` simulated training seconds (the sum of the env's ``info["train_seconds"]``, which
NB201 tables give per cell, as in NATS-Bench's ``simulate_train_eval``; repeated architectures
count again). Runs go in parallel processes. Policies use their own defaults (the paper's for
REINFORCE) unless ``--agent-kwargs POLICY.KEY=VALUE`` overrides them.

Writes to ``--out``:

- ``runs.csv``: one row per evaluation (policy, seed, index, arch, reward, the report metric,
  training seconds and their running total, best-so-far reward and the report metric of that
  best architecture). The same arguments give the same file (training seconds of trained
  children are measured, so only tabular runs repeat them exactly);
- ``summary.md``: per policy, mean ± std over seeds of the report metric of the architecture with
  the best search reward so far, at a few budgets (as in NB201's tables);
- ``curves.png``: that best-so-far report metric against the budget, mean and 95% confidence band;
- ``config.json``: the resolved configuration and the git commit.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from tqdm import tqdm

import nas_env  # noqa: F401 - registers the envs
from agents.base import Evaluation, make_agent
from nas_env.errors import NASEnvError
from scripts._benchmark_config import BenchmarkConfig
from scripts._benchmark_report import plot_curves, published_figures, summary_markdown, write_runs
from scripts._cli import (
    OneLineParser,
    UsageError,
    add_dataclass_arguments,
    git_commit,
    given_values,
    make_env,
)
from scripts._jobs import run_jobs
from scripts._plan import evaluation_of

RUNS, SUMMARY, CURVES, CONFIG = "runs.csv", "summary.md", "curves.png", "config.json"


# ---- one run -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One search run: a policy, a seed and everything needed to rebuild env and agent in a worker."""

    policy: str
    seed: int
    env: str
    env_kwargs: dict[str, Any]
    overrides: dict[str, Any]
    max_evaluations: int
    time_budget: float | None
    report_key: str
    promote: dict[str, Any] | None = None
    """Successive-halving settings (rungs, eta, bracket) wrapping the policy, or None."""

    @property
    def label(self) -> str:
        """The policy's name in the outputs (``POLICY+sh`` with successive halving)."""
        return f"{self.policy}+sh" if self.promote else self.policy


class _BudgetSpent(Exception):
    """Raised from the evaluation callback when the next evaluation would exceed the time budget."""


def run_job(job: Job, progress: Callable[[float], None] | None = None) -> tuple[list[dict[str, Any]], float]:
    """Run one search and return its rows (see ``runs.csv``) and its wall-clock seconds."""
    start = time.perf_counter()
    torch.set_num_threads(1)  # runs go in parallel; one thread each is also deterministic
    env = make_env(job.env, job.env_kwargs)
    if job.promote:
        agent = make_agent(
            "halving", env, seed=job.seed, base=job.policy, base_kwargs=job.overrides, **job.promote
        )
    else:
        agent = make_agent(job.policy, env, seed=job.seed, **job.overrides)
    rows: list[dict[str, Any]] = []
    report, best_report = job.report_key, f"best_{job.report_key}"
    best_key: list[tuple[float, ...]] = []  # the best so far by the agent's own ranking (rungs first)

    def record(evaluation: Evaluation) -> None:
        seconds = float(evaluation.info.get("train_seconds", 0.0))
        total = (rows[-1]["total_train_seconds"] if rows else 0.0) + seconds
        if job.time_budget is not None and total > job.time_budget:
            raise _BudgetSpent
        value = float(evaluation.info.get(report, math.nan))
        key = agent.rank_key(evaluation)
        improved = not best_key or key > best_key[0]
        if improved:
            best_key[:] = [key]
        row = {
            "policy": job.label,
            "seed": job.seed,
            "index": evaluation.index,
            "arch": evaluation.arch,
            "reward": evaluation.reward,
            report: value,
            "train_seconds": seconds,
            "total_train_seconds": total,
            "best_reward": evaluation.reward if improved else rows[-1]["best_reward"],
            best_report: value if improved else rows[-1][best_report],
        }
        rows.append(row)
        if progress is not None:
            progress(seconds if job.time_budget is not None else 1)

    try:
        agent.search(job.max_evaluations, callback=record)
    except _BudgetSpent:
        pass
    finally:
        agent.close()
        env.close()
    return rows[: job.max_evaluations], time.perf_counter() - start


# ---- many runs in parallel ------------------------------------------------------------------------------


class _Batched:
    """Sends progress to the parent at most every 0.2 s (a queue put per tabular lookup would dominate)."""

    def __init__(self, sink: Callable[[float], object]) -> None:
        self.sink, self.pending, self.last = sink, 0.0, time.monotonic()

    def __call__(self, amount: float) -> None:
        self.pending += amount
        if time.monotonic() - self.last > 0.2:
            self.flush()

    def flush(self) -> None:
        """Send the whole units (architectures or seconds) so far; the bar counts integers."""
        whole = int(self.pending)
        if whole:
            self.sink(whole)
        self.pending, self.last = self.pending - whole, time.monotonic()


def _run_batched(job: Job, progress: Callable[[float], object]) -> tuple[list[dict[str, Any]], float]:
    batched = _Batched(progress)
    try:
        return run_job(job, batched)
    except Exception as error:
        raise RuntimeError(f"run {job.policy} seed {job.seed} failed: {error}") from error
    finally:
        batched.flush()


def run_all(jobs: Sequence[Job], workers: int, bar: tqdm) -> list[tuple[list[dict[str, Any]], float]]:
    """Run every job, in ``workers`` spawned processes (or in this one for ``workers == 1``)."""
    return run_jobs(_run_batched, jobs, workers, bar)


# ---- command line --------------------------------------------------------------------------------------


def parse_config(argv: Sequence[str] | None) -> BenchmarkConfig:
    """Parse the command line into a :class:`BenchmarkConfig`."""
    parser = OneLineParser(
        prog="nas-benchmark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_dataclass_arguments(parser, BenchmarkConfig)
    return BenchmarkConfig(**given_values(parser.parse_args(argv)))


class EnvCheck(NamedTuple):
    """What :func:`check_env` learnt about the env and the policies before any run."""

    optimum: tuple[str, float, float] | None
    """For a table-backed env reporting ``test_accuracy``: the cell with the best search reward,
    its reward and its reported accuracy."""
    reward_metric: str | None
    """The table column searched on, when there is one."""
    report_metric: str | None
    """The table column reported, when there is one (with ``reward_metric``: published figures)."""
    skipped: dict[str, str]
    """With ``--policies all``: the policies that cannot run with their defaults, and why."""
    reward_is_accuracy: bool = False
    """The search reward is an accuracy in [0, 1] (reported in percent, as the report metric)."""


def check_env(config: BenchmarkConfig) -> EnvCheck:
    """Build the env and every agent once, so bad settings fail before any work.

    With ``--policies all``, a policy that cannot be built with its defaults (e.g. a wrapper that
    needs settings, or one whose optional dependency is missing) is skipped, not an error.

    Raises:
        UsageError: A bad env id, env argument, agent setting or an impossible time budget.
    """
    env = make_env(config.env, config.env_kwargs)
    try:
        evaluation = evaluation_of(env)
        evaluator: Any = getattr(evaluation, "evaluator", None)
        reward_is_accuracy = getattr(getattr(evaluation, "reward_fn", None), "__name__", "") == "accuracy"
        if config.time_budget is not None and not getattr(evaluator, "has_train_seconds", False):
            raise UsageError(
                f"--time-budget needs simulated training seconds, which {config.env} with "
                f"{config.env_kwargs} does not report; use an NB201 table with "
                "{dataset}_train_seconds_{epochs}ep columns, or --budget"
            )
        skipped: dict[str, str] = {}
        promotion = config.promotion()
        for policy, overrides in config.overrides().items():
            try:
                if promotion:
                    make_agent("halving", env, base=policy, base_kwargs=overrides, **promotion).close()
                else:
                    make_agent(policy, env, seed=0, **overrides)
            except (TypeError, ValueError, NASEnvError) as exc:
                if config.policies.strip() == "all" and not overrides:
                    skipped[policy] = str(exc)
                    continue
                what = f"--agent-kwargs for {policy}" if overrides else f"--policies {policy}"
                raise UsageError(f"{what}: {exc}") from exc
        if config.report_key == "test_accuracy" and hasattr(evaluator, "best_cell"):
            arch, reward, report = evaluator.best_cell("reward")
            optimum = (arch.to_str(), reward, report)
            metrics = getattr(evaluator, "reward_metric", None), getattr(evaluator, "report_metric", None)
            return EnvCheck(optimum, *metrics, skipped, reward_is_accuracy)
        return EnvCheck(None, None, None, skipped, reward_is_accuracy)
    finally:
        env.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nas-benchmark``; prints the summary table."""
    try:
        config = parse_config(argv)
        checked = check_env(config)
    except (UsageError, ValueError, NASEnvError) as exc:
        print(f"nas-benchmark: error: {exc}", file=sys.stderr)
        return 2
    out = Path(config.out or ".")
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG).write_text(json.dumps({"benchmark": asdict(config), "commit": git_commit()}, indent=2))
    overrides = config.overrides()
    policies = [p for p in config.policy_list if p not in checked.skipped]
    jobs = [
        Job(
            p,
            s,
            config.env,
            config.env_kwargs,
            overrides[p],
            config.max_evaluations,
            config.time_budget,
            config.report_key,
            config.promotion(),
        )
        for p in policies
        for s in range(config.seeds)
    ]
    labels = list(dict.fromkeys(job.label for job in jobs))
    workers = config.workers or min(len(jobs), mp.cpu_count())
    by_time = config.time_budget is not None
    per_run = config.time_budget if config.time_budget is not None else config.max_evaluations
    total = int(len(jobs) * per_run)
    with tqdm(
        total=total, unit="s" if by_time else "arch", disable=not config.progress, desc="benchmark"
    ) as bar:
        results = run_all(jobs, min(workers, len(jobs)), bar)
    runs: dict[str, list[list[dict[str, Any]]]] = {label: [] for label in labels}
    wall: dict[str, list[float]] = {label: [] for label in labels}
    for job, (rows, seconds) in zip(jobs, results, strict=True):
        runs[job.label].append(rows)
        wall[job.label].append(seconds)
    write_runs(out / RUNS, [rows for rows, _ in results])
    published = published_figures(checked.reward_metric, checked.report_metric)
    summary = summary_markdown(
        config, runs, wall, checked.optimum, published, checked.skipped, checked.reward_is_accuracy
    )
    (out / SUMMARY).write_text(summary)
    plot_curves(out / CURVES, config, runs, checked.optimum, published)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
