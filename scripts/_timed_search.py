"""Searches under a wall-clock budget charged in measured seconds (``benchmarks/bench_search.py``).

A run is charged, for each evaluation it uses, the seconds measured when that evaluation was
trained, whether this run trained it or found it in the shared results store; a repeat within the
run costs nothing (a fresh run would find it in its own store). A screened policy is also charged
the measured seconds of each zero-cost score it uses. The run's clock is its charged seconds
divided by its one-thread workers, and the evaluation that would take the clock past the budget is
dropped. So a run costs what a fresh run would, however much of it the store already held.

``NAS-Bench-201-Replay-v0`` and ``NAS-CIFAR10-Replay-v0`` (:class:`ReplayEnv`) score NB201 cells
and CNN children from a measured-evaluations CSV (:mod:`nas_env.evaluators.replay`) that
:func:`export_measured` writes from the store, so the same runs replay without training;
:func:`replay_screen_store` gives their screens the CSV's scores.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from tqdm import tqdm

import nas_env  # noqa: F401 - registers the envs (also in spawned workers)
from agents.base import Evaluation, SearchAgent, make_agent
from agents.screen import ZeroCostScreen
from nas_env.envs.token_env import TokenNASEnv
from nas_env.evaluation import Evaluation as EvaluationService
from nas_env.evaluators.replay import (
    ZERO_COST_PREFIX,
    MeasuredEvaluation,
    ReplayEvaluator,
    read_measured_csv,
    write_measured_csv,
)
from nas_env.evaluators.zero_cost import ZERO_COST_METRIC
from nas_env.rewards import get_reward
from nas_env.search_spaces.cnn import CnnSearchSpace
from nas_env.search_spaces.nb201 import NB201SearchSpace
from nas_env.store import ResultsStore
from nas_env.threads import torch_threads
from nas_env.training.calibration import cpu_model
from scripts._cli import git_commit
from scripts._jobs import run_jobs

REPLAY_ENV_IDS = {"NAS-Bench-201-v0": "NAS-Bench-201-Replay-v0", "NAS-CIFAR10-v0": "NAS-CIFAR10-Replay-v0"}
"""The env a ``--replay`` run searches in place of each searchable env."""
SPACES: dict[str, Callable[[], Any]] = {
    "NAS-Bench-201-v0": NB201SearchSpace,
    "NAS-CIFAR10-v0": CnnSearchSpace,
}
"""Each searchable env's search space, as ``gym.make(env_id)`` builds it by default."""


class ReplayEnv(TokenNASEnv):
    """An env's search space scored from a measured-evaluations CSV at one fidelity: no training.

    The reward is the validation accuracy, as in the benchmark's trained envs (``reward="accuracy"``).

    Args:
        replay_csv: The CSV (see :mod:`nas_env.evaluators.replay`).
        fidelity: The rows answered (successive halving remakes the env with each rung's preset).
        space_of: The env whose default search space is searched (a key of :data:`SPACES`).
    """

    def __init__(self, replay_csv: str, fidelity: str = "proxy", space_of: str = "NAS-Bench-201-v0") -> None:
        evaluation = EvaluationService(ReplayEvaluator(replay_csv, fidelity), get_reward("accuracy"))
        super().__init__(SPACES[space_of](), evaluation)


for _env_id, _replay_id in REPLAY_ENV_IDS.items():
    if _replay_id not in gym.registry:
        gym.register(id=_replay_id, entry_point=f"{__name__}:ReplayEnv", kwargs={"space_of": _env_id})


@dataclass(frozen=True)
class Job:
    """One search: a policy, a seed, and what a worker process needs to rebuild its env and agent."""

    policy: str
    seed: int
    env_id: str
    env_kwargs: dict[str, Any]
    """Arguments of ``gym.make(env_id)``: the fidelity, the shared store or the replay CSV."""
    overrides: dict[str, Any]
    """The policy's settings."""
    promote: dict[str, Any] | None
    """Successive halving around the policy (rungs, eta, bracket), or None."""
    fidelity: str
    """The preset of rung 0 (the env's own), for telling repeats apart."""
    time_budget: float
    """Clock seconds the run may use."""
    workers: int
    """One-thread workers: the clock's divisor."""
    max_evaluations: int


@dataclass(frozen=True)
class RunResult:
    """What one search returned and what it cost."""

    policy: str
    seed: int
    arch: str | None
    """The returned cell (None: not one evaluation fitted in the budget)."""
    reward: float
    """Its search reward (validation accuracy at its fidelity)."""
    evaluations: int
    """Evaluations within the budget (repeats included)."""
    trained: int
    """Evaluations this run trained now, the dropped one included (the others came from the store)."""
    charged_s: float
    clock_s: float
    wall_s: float
    """Seconds this run really took here."""


class _BudgetSpent(Exception):
    """The next evaluation would take the run's clock past its budget."""


class Meter:
    """Charges a run's evaluations their measured seconds and stops the run at its budget.

    Args:
        budget_s: Clock seconds the run may use.
        workers: The clock's divisor.
        screen: A screened policy's zero-cost screen (its new scores are charged too), or None.
    """

    def __init__(self, budget_s: float, workers: int, screen: ZeroCostScreen | None) -> None:
        self.budget_s, self.workers, self.screen = budget_s, workers, screen
        self.charged_s = 0.0
        self.seen: set[tuple[str, str]] = set()
        self.screened: set[str] = set()

    def charge(self, arch: str, fidelity: str, cost_s: float) -> float:
        """Charge one evaluation and the screen's scores since the last; return the clock seconds.

        Raises:
            _BudgetSpent: The clock would pass the budget (then nothing is charged).
        """
        seconds = 0.0 if (arch, fidelity) in self.seen else cost_s
        new = [name for name in self.screen.memo if name not in self.screened] if self.screen else []
        seconds += sum(self._screen_seconds(name) for name in new)
        if (self.charged_s + seconds) / self.workers > self.budget_s:
            raise _BudgetSpent
        self.charged_s += seconds
        self.seen.add((arch, fidelity))
        self.screened.update(new)
        return seconds / self.workers

    def _screen_seconds(self, arch: str) -> float:
        screen = self.screen
        if screen is None or screen.store is None:
            raise ValueError("a screened policy needs a screen_cache store to be charged its scores")
        found = screen.store.lookup(arch, screen.key)
        return found[0].cost_s if found is not None else 0.0  # a failed score is stored as failed


def screen_of(agent: SearchAgent) -> ZeroCostScreen | None:
    """The zero-cost screen of a screened policy (also inside successive halving), else None."""
    for holder in (agent, getattr(agent, "base", None)):
        screen = getattr(holder, "screen", None)
        if isinstance(screen, ZeroCostScreen):
            return screen
    return None


def build_agent(job: Job, env: gym.Env[Any, Any]) -> SearchAgent:
    """The job's policy on ``env``, wrapped in successive halving when the job promotes."""
    if job.promote:
        return make_agent("halving", env, job.seed, base=job.policy, base_kwargs=job.overrides, **job.promote)
    return make_agent(job.policy, env, seed=job.seed, **job.overrides)


def run_job(job: Job, progress: Callable[[float], object] | None = None) -> RunResult:
    """Search until the run's clock reaches its budget; the cell it returns and what it cost.

    The returned cell is the best kept evaluation by the agent's own ranking (successive
    halving: the highest rung first). ``progress`` gets each evaluation's clock seconds.
    """
    start = time.perf_counter()
    env = gym.make(job.env_id, **job.env_kwargs)
    agent = build_agent(job, env)
    meter = Meter(job.time_budget, job.workers, screen_of(agent))
    kept: list[Evaluation] = []
    trained: list[Evaluation] = []  # also the dropped one: its seconds were spent here

    def record(evaluation: Evaluation) -> None:
        info = evaluation.info
        if not info.get("cached") and job.env_id not in REPLAY_ENV_IDS.values():
            trained.append(evaluation)
        fidelity = str(info["fidelity"]) if info.get("rung") else job.fidelity
        clock = meter.charge(evaluation.arch, fidelity, float(info["cost_s"]))
        kept.append(evaluation)
        if progress is not None:
            progress(clock)

    try:
        with torch_threads(1):
            agent.search(job.max_evaluations, callback=record)
    except _BudgetSpent:
        pass
    finally:
        agent.close()
        env.close()
    best = max(reversed(kept), key=agent.rank_key) if kept else None
    return RunResult(
        policy=job.policy,
        seed=job.seed,
        arch=best.arch if best else None,
        reward=best.reward if best else float("nan"),
        evaluations=len(kept),
        trained=len(trained),
        charged_s=meter.charged_s,
        clock_s=meter.charged_s / job.workers,
        wall_s=time.perf_counter() - start,
    )


# ---- runs side by side -----------------------------------------------------------------------------


def _announce(bar: tqdm, result: RunResult) -> None:
    bar.write(
        f"  {result.policy} seed {result.seed}: {result.evaluations} evaluations ({result.trained} trained "
        f"now), clock {result.clock_s:.0f} s, wall {result.wall_s:.0f} s, returned {result.arch}"
    )


def run_all(jobs: Sequence[Job], workers: int, bar: tqdm) -> list[RunResult]:
    """Every job, ``workers`` at a time in spawned one-thread processes (in this one for 1 worker).

    Raises:
        Exception: The first failed run's error (e.g. a replay's missing evaluation); runs not
            started yet are cancelled.
    """
    return run_jobs(run_job, jobs, workers, bar, on_result=lambda result: _announce(bar, result))


# ---- measured evaluations: export and replay ---------------------------------------------------------

Labels = dict[str, tuple[str, str]]
"""Store fingerprint -> (the fidelity label of its CSV rows, the metric holding their score)."""


def replay_screen_store(replay: str, path: Path, env_id: str = "NAS-Bench-201-v0") -> str:
    """A fresh store at ``path`` holding the replay CSV's zero-cost scores, where screens look them up."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    store = ResultsStore(path)
    keys: dict[str, str] = {}
    for row in read_measured_csv(replay):
        if row.fidelity.startswith(ZERO_COST_PREFIX):
            name = row.fidelity.removeprefix(ZERO_COST_PREFIX)
            if name not in keys:
                keys[name] = ZeroCostScreen(SPACES[env_id](), name, None).key
            store.add(
                row.arch,
                keys[name],
                row.to_result(ZERO_COST_METRIC),
                -math.inf if row.score is None else row.score,
            )
    store.close()
    return str(path)


def export_measured(config: Any, labels: Labels, command: str) -> int:
    """Write the store's evaluations at ``labels``' fingerprints to the ``--export`` CSV of ``config``.

    Per architecture and fingerprint: its first success (what every cache hit returned), or its
    first failure when it never succeeded. Comment lines say how, where and when it was measured.

    Args:
        config: The benchmark's settings (``BenchSearchConfig``: ``env``, ``export``, ``store_path``,
            ``workers``, ``device``).
        labels: Fingerprint -> (fidelity label, metric), from the benchmark's envs and screens.
        command: The command line, recorded in the file.

    Returns:
        The number of rows written.
    """
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    comments = [
        f"measured evaluations of {config.env}, trained mode: per arch and fidelity its first success",
        f"made by: {command}",
        f"CPU: {cpu_model()}, {os.cpu_count()} cores; {config.workers} one-thread worker processes; "
        f"device {config.device}; torch {torch.__version__}",
        f"date: {made}; load average {os.getloadavg()[0]:.1f}; commit: {git_commit() or 'unknown'}",
        f"store: {config.store_path}",
        "score: validation accuracy (fraction), the zero-cost score on zero_cost: rows, empty: failed",
        "replay: the same command with --replay THIS_FILE in place of --export (and its own --out)",
    ]
    store_path, path = config.store_path, config.export
    chosen: dict[tuple[str, str], dict[str, Any]] = {}
    store = ResultsStore(store_path)
    for row in store.rows():
        key = (str(row["arch"]), str(row["fingerprint"]))
        if key[1] in labels and (
            key not in chosen or (chosen[key]["status"] != "ok" and row["status"] == "ok")
        ):
            chosen[key] = row
    store.close()
    rows = []
    for (arch, fingerprint), row in chosen.items():
        label, metric = labels[fingerprint]
        score = json.loads(str(row["metrics"])).get(metric) if row["status"] == "ok" else None
        rows.append(MeasuredEvaluation(arch, label, score, float(str(row["cost_s"])), int(str(row["seed"]))))
    write_measured_csv(path, rows, comments)
    return len(rows)


def import_measured(path: str, store_path: str, labels: Labels) -> tuple[int, int]:
    """Add a measured-evaluations CSV's successes at ``labels``' fidelities to the store.

    Continues a measurement elsewhere (another session, another clone): the runs then find these
    cells in the store and are charged their measured seconds, as if this store had trained them.
    Failed rows are skipped (a store retrains a failed child); a cell already in the store keeps its
    own value. The stored reward is the score: the validation accuracy (the benchmark's
    ``reward="accuracy"``) or the zero-cost score.

    Returns:
        ``(rows added, rows whose cell the store already held)``.
    """
    keys = {label: (fingerprint, metric) for fingerprint, (label, metric) in labels.items()}
    added = kept = 0
    store = ResultsStore(store_path)
    for row in read_measured_csv(path):
        if row.score is None or row.fidelity not in keys:
            continue
        fingerprint, metric = keys[row.fidelity]
        if store.lookup(row.arch, fingerprint) is not None:
            kept += 1
            continue
        store.add(row.arch, fingerprint, row.to_result(metric), row.score)
        added += 1
    store.close()
    return added, kept
