r"""End to end: search NAS-Bench-201 training children for a wall-clock budget; judge the cell by the table.

Each policy x seed searches ``NAS-Bench-201-v0`` in trained mode (``--fidelity``, or a ladder with
``--promote``: successive halving, the top rung returned) until its clock reaches ``--time-budget``
seconds. The cell it returns, by its own search signal, is looked up in the NB201 table (``--table``;
default: the one found under ``$NAS_ENV_DATA``): its 200-epoch test accuracy and its rank among the
15,625 cells, per policy mean ± std over seeds, printed beside NB201's published figures.

- **One store, charged seconds.** All runs share one results store (``--store``): a killed run loses
  nothing, and rerunning the same command continues. Each evaluation a run uses is charged the
  seconds measured when it was trained, from the store or not; a repeat within the run is free (a
  fresh run would find it in its own store); screened policies also pay each zero-cost score. A
  run's clock is its charged seconds / ``--workers`` (N one-thread workers kept busy; the agent's
  own compute is not charged). The evaluation that would pass the budget is dropped.
- **Workers.** ``--workers N`` trains N children at once, each in its own one-thread process: N
  searches side by side. (An ask/tell agent on one env has one child in flight, so the env's pool
  backend would keep only one core busy.)
- **Export and replay.** ``--export CSV`` writes the store's measured evaluations at the fidelities
  used (arch, fidelity, score, seconds, seed; comment lines say how it was made). ``--replay CSV``
  answers every evaluation from such a file with its measured seconds: no training, and an
  evaluation missing from the file is an error. Zero-cost screen scores missing from it are scored
  (seconds, no training), charged the seconds measured then.

Outputs in ``--out``: ``runs.csv`` (one row per run), ``summary.md`` (printed too), ``config.json``.
Example (the real measurement and its cost: ``docs/end_to_end.md``)::

    NAS_ENV_DATA=../shared/data python benchmarks/bench_search.py --policies random,local_search \
        --seeds 3 --time-budget 1800 --store runs/e2e/results.sqlite --out runs/e2e/30min
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from agents.base import AGENT_NAMES
from nas_env.errors import EvaluationError, NASEnvError, check_choice
from nas_env.evaluators.replay import ZERO_COST_PREFIX
from nas_env.evaluators.tabular import find_nb201_table, load_nb201_table
from nas_env.evaluators.zero_cost import ZERO_COST_METRIC
from nas_env.search_spaces.nb201 import NUM_CELLS, NB201Architecture
from nas_env.threads import torch_threads
from nas_env.training.calibration import cpu_model
from nas_env.training.recipes import NB201_FIDELITIES
from scripts._cli import (
    TIME_BUDGET_CAP,
    OneLineParser,
    UsageError,
    add_dataclass_arguments,
    git_commit,
    given_values,
    make_env,
)
from scripts._timed_search import (
    REPLAY_ENV_ID,
    Job,
    Labels,
    RunResult,
    build_agent,
    export_measured,
    import_measured,
    replay_screen_store,
    run_all,
    screen_of,
)

ENV_ID = "NAS-Bench-201-v0"
REPORT_COLUMN = "cifar10_test_acc_200ep"
POLICIES = tuple(name for name in AGENT_NAMES if name != "halving")
"""Policies a run may use (successive halving comes from ``--promote``, around any of them)."""
PUBLISHED = (
    ("random search", "93.70 ± 0.36", "12,000 simulated GPU-s of table look-ups"),
    ("REINFORCE", "93.85 ± 0.37", "12,000 simulated GPU-s of table look-ups"),
    ("REA", "93.92 ± 0.30", "12,000 simulated GPU-s of table look-ups"),
    ("BOHB", "93.61", "12,000 simulated GPU-s of table look-ups"),
    ("GDAS", "93.51-93.61", "weight sharing, ~8 h on a GPU"),
    ("RSPS", "87.66", "weight sharing, hours on a GPU"),
    ("SETN", "86.19", "weight sharing, hours on a GPU"),
    ("ENAS", "54.30", "weight sharing, hours on a GPU"),
    ("DARTS", "54.30", "weight sharing, hours on a GPU"),
    ("NASWOT (N=1000)", "92.96", "training-free (Mellor et al., ICML 2021)"),
    ("optimum", "94.37", "the table's best cell"),
)
"""Published CIFAR-10 test accuracy (%) of the cell found: NB201 (Dong & Yang, ICLR 2020) Table 5
(std where ``scripts._benchmark_report`` has it), and NASWOT; none measured here."""


@dataclass(frozen=True)
class BenchSearchConfig:
    """Settings of the end-to-end benchmark (each is a command-line flag)."""

    out: str | None = None
    """Output directory: runs.csv (one row per run), summary.md, config.json."""
    time_budget: float | None = None
    """Wall-clock seconds per run: its charged seconds / --workers (required)."""
    policies: str = "random,local_search"
    """Comma-separated search policies (agents.AGENT_NAMES but halving; see --promote)."""
    seeds: int = 3
    """Runs per policy, with seeds 0..N-1."""
    fidelity: str = "proxy"
    """Trained-mode preset the children are trained at (smoke, proxy, paper)."""
    promote: str = ""
    """Successive halving around every policy: presets to promote the best children to, cheapest first."""
    promote_eta: int = 3
    """Successive halving: keep the best 1/eta at each fidelity."""
    promote_bracket: int = 9
    """Successive halving: evaluations at --fidelity between promotions."""
    workers: int = 2
    """One-thread workers: children trained at once (runs side by side), and the clock's divisor."""
    store: str | None = None
    """Results store shared by every run (default: OUT/results.sqlite)."""
    table: str | None = None
    """NB201 table judging the returned cells (default: found under $NAS_ENV_DATA)."""
    max_evaluations: int = TIME_BUDGET_CAP
    """Most evaluations a run may make (the time budget usually stops it first)."""
    agent_kwargs: dict[str, Any] = field(default_factory=dict)
    """Policy settings as POLICY.KEY=VALUE, e.g. reinforce_nb201.learning_rate=0.05."""
    export: str | None = None
    """Write the store's measured evaluations at these fidelities to this CSV."""
    replay: str | None = None
    """Answer evaluations from this measured-evaluations CSV (no training; a missing one is an error)."""
    import_csv: str | None = None
    """Add this measured-evaluations CSV's evaluations to --store first (continue a measurement)."""
    device: str = "cpu"
    """Where children train."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        """Check every value that needs no env, naming the bad one and the allowed ones."""
        if not self.out:
            raise UsageError("--out DIR is required")
        if self.time_budget is None:
            raise UsageError("--time-budget SECONDS is required (wall-clock seconds per run)")
        if not 0 < self.time_budget < 1e9:
            raise UsageError(f"--time-budget {self.time_budget:g} must be a positive number of seconds")
        for name in self.policy_list:
            check_choice("--policies entry", name, POLICIES)
        if not self.policy_list or len(set(self.policy_list)) != len(self.policy_list):
            raise UsageError(f"--policies {self.policies!r} must name each policy once")
        check_choice("--fidelity", self.fidelity, NB201_FIDELITIES)
        for rung in self.rungs:
            check_choice("--promote entry", rung, NB201_FIDELITIES)
        for flag, value in (("--seeds", self.seeds), ("--workers", self.workers)):
            if value < 1:
                raise UsageError(f"{flag} {value} must be at least 1")
        if self.max_evaluations < 1:
            raise UsageError(f"--max-evaluations {self.max_evaluations} must be at least 1")
        if self.replay is not None and not Path(self.replay).is_file():
            raise UsageError(f"--replay {self.replay}: no such file (write one with --export)")
        if self.import_csv is not None and not Path(self.import_csv).is_file():
            raise UsageError(f"--import-csv {self.import_csv}: no such file (write one with --export)")
        if self.replay is not None and self.import_csv is not None:
            raise UsageError("--import-csv fills the store that training uses; a --replay run trains nothing")
        if self.replay is not None and self.export is not None:
            raise UsageError("--export writes the store's evaluations; a --replay run has none of its own")
        self.overrides()

    @property
    def policy_list(self) -> tuple[str, ...]:
        """The policies, in the order given."""
        return tuple(p.strip() for p in self.policies.split(",") if p.strip())

    @property
    def rungs(self) -> tuple[str, ...]:
        """The ``--promote`` presets, cheapest first."""
        return tuple(r.strip() for r in self.promote.split(",") if r.strip())

    @property
    def store_path(self) -> str:
        """The results store shared by every run."""
        return self.store or str(Path(str(self.out)) / "results.sqlite")

    def overrides(self) -> dict[str, dict[str, Any]]:
        """``--agent-kwargs`` split per policy.

        Raises:
            UsageError: A key that is not ``POLICY.KEY`` with POLICY one of ``--policies``.
        """
        out: dict[str, dict[str, Any]] = {p: {} for p in self.policy_list}
        for key, value in self.agent_kwargs.items():
            policy, sep, setting = key.partition(".")
            if not sep or policy not in out:
                raise UsageError(
                    f"--agent-kwargs {key}={value!r}: keys are POLICY.KEY, POLICY in {list(out)}"
                )
            out[policy][setting] = value
        return out


def prepare(config: BenchSearchConfig) -> tuple[list[Job], Labels]:
    """Build each fidelity's env and each policy once (bad settings fail before any work); the jobs.

    Raises:
        UsageError: A bad setting, or a replay CSV without the fidelities or scores needed.
    """
    screen_store = config.store_path
    kwargs: dict[str, Any]
    if config.replay is not None:
        env_id, kwargs = REPLAY_ENV_ID, {"replay_csv": config.replay}
        screen_store = replay_screen_store(config.replay, Path(str(config.out)) / "replay_screen.sqlite")
    else:
        env_id = ENV_ID
        kwargs = {"table_path": None, "cache_path": config.store_path, "device": config.device}
    promote = {"rungs": config.rungs, "eta": config.promote_eta, "bracket": config.promote_bracket}
    labels: Labels = {}
    overrides = config.overrides()
    for fidelity in (*config.rungs, config.fidelity):  # the env at --fidelity stays open for the agents
        env = make_env(env_id, {**kwargs, "fidelity": fidelity})
        labels[env.unwrapped.evaluator.fingerprint] = (fidelity, "val_accuracy")  # type: ignore[attr-defined]
        if fidelity != config.fidelity:
            env.close()
    bases: list[Job] = []
    for policy in config.policy_list:
        job = Job(
            policy, 0, env_id, {**kwargs, "fidelity": config.fidelity}, overrides[policy],
            promote if config.rungs else None, config.fidelity, float(config.time_budget or 0),
            config.workers, config.max_evaluations,
        )  # fmt: skip
        try:
            agent = build_agent(job, env)
        except (TypeError, ValueError, NASEnvError) as exc:
            raise UsageError(f"--policies {policy} (--agent-kwargs {overrides[policy]}): {exc}") from exc
        screen = screen_of(agent)
        agent.close()
        if screen is not None:
            labels[screen.key] = (ZERO_COST_PREFIX + screen.evaluator.zero_cost, ZERO_COST_METRIC)
            job.overrides.setdefault("screen_cache", screen_store)
        bases.append(job)
    env.close()
    # Seed by seed, so a benchmark stopped early holds every policy at the same seeds.
    jobs = [Job(**{**asdict(job), "seed": seed}) for seed in range(config.seeds) for job in bases]
    return jobs, labels


# ---- figures -----------------------------------------------------------------------------------------


def judge(results: Sequence[RunResult], table: str) -> list[tuple[float, int]]:
    """Each returned cell's 200-epoch test accuracy (%) in the table and its rank (1 = best) of 15,625."""
    column = load_nb201_table(table).column(REPORT_COLUMN)
    out = []
    for result in results:
        if result.arch is None:
            out.append((float("nan"), 0))
            continue
        accuracy = float(column[NB201Architecture.from_str(result.arch).index])
        out.append((accuracy, 1 + int(np.sum(column > accuracy))))
    return out


def _mean_std(values: Sequence[float], digits: int) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def summary(
    config: BenchSearchConfig,
    results: Sequence[RunResult],
    figures: list[tuple[float, int]],
    table: str,
    command: str,
) -> str:
    """The side-by-side table per policy, the published rows, and every run with its seed."""
    source = f"replayed from {config.replay}" if config.replay else f"store {config.store_path}"
    ladder = f" promoted to {', '.join(config.rungs)}" if config.rungs else ""
    lines = [
        f"# End to end: {ENV_ID} trained at {config.fidelity}{ladder}, {config.time_budget:g} s per run",
        "",
        f"Clock: charged measured seconds / {config.workers} one-thread workers; {source}. "
        f"Seeds 0..{config.seeds - 1}.",
        f"Judged by {REPORT_COLUMN} of the returned cell in {table}; rank 1 = best of {NUM_CELLS:,}.",
        f"Command: `{command}`",
        f"CPU: {cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| policy | test acc. (%) | rank | evaluations | clock (min) | runs |",
        "|---|---|---|---|---|---|",
    ]
    for policy in config.policy_list:
        mine = [(r, f) for r, f in zip(results, figures, strict=True) if r.policy == policy and r.arch]
        accs, ranks = [f[0] for _, f in mine], [float(f[1]) for _, f in mine]
        evals, clock = [float(r.evaluations) for r, _ in mine], [r.clock_s / 60 for r, _ in mine]
        name = f"{policy}+sh" if config.rungs else policy
        lines.append(
            f"| {name} | {_mean_std(accs, 2)} | {_mean_std(ranks, 0)} | {_mean_std(evals, 1)} | "
            f"{_mean_std(clock, 1)} | {len(mine)} of {config.seeds} |"
        )
    lines += [
        "",
        "Published, not measured here: CIFAR-10 test accuracy (%) of the cell found "
        "(NB201, Dong & Yang, ICLR 2020, Table 5; NASWOT, Mellor et al., ICML 2021).",
        "",
        "| method (published) | test acc. (%) | budget |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {acc} | {setting} |" for name, acc, setting in PUBLISHED]
    lines += [
        "",
        "| policy | seed | returned cell | search reward | test acc. (%) | rank | evaluations "
        "| trained now | clock s | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r, (acc, rank) in zip(results, figures, strict=True):
        lines.append(
            f"| {r.policy} | {r.seed} | `{r.arch}` | {r.reward:.4f} | {acc:.2f} | {rank} | "
            f"{r.evaluations} | {r.trained} | {r.clock_s:.1f} | {r.wall_s:.0f} |"
        )
    return "\n".join(lines) + "\n"


def write_runs(path: Path, results: Sequence[RunResult], figures: list[tuple[float, int]]) -> None:
    """One row per run: what it returned, the table's figures for it (test accuracy %, rank), its cost."""
    pairs = zip(results, figures, strict=True)
    rows = [{**asdict(r), "test_acc_200ep": acc, "rank": rank} for r, (acc, rank) in pairs]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*asdict(results[0]), "test_acc_200ep", "rank"])
        writer.writeheader()
        writer.writerows(rows)


# ---- command line ------------------------------------------------------------------------------------


def parse_config(argv: Sequence[str]) -> BenchSearchConfig:
    """Parse the command line into a :class:`BenchSearchConfig`."""
    parser = OneLineParser(
        prog="bench_search", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_dataclass_arguments(parser, BenchSearchConfig)
    return BenchSearchConfig(**given_values(parser.parse_args(argv)))


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or replay) every policy x seed, print and write the figures; 2 on a bad argument."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = shlex.join(["python", "benchmarks/bench_search.py", *args])
    try:
        config = parse_config(args)
        table = str(config.table or find_nb201_table())
        load_nb201_table(table).column(REPORT_COLUMN)
        Path(str(config.out)).mkdir(parents=True, exist_ok=True)
        with torch_threads(1):  # as in the runs: precision="auto" is chosen per thread count
            jobs, labels = prepare(config)
    except (ValueError, NASEnvError) as exc:
        print(f"bench_search: error: {exc}", file=sys.stderr)
        return 2
    out = Path(str(config.out))
    (out / "config.json").write_text(
        json.dumps({"config": asdict(config), "command": command, "commit": git_commit()}, indent=2)
    )
    print(
        f"{len(jobs)} runs of {config.time_budget:g} s clock, {min(config.workers, len(jobs))} at a time; "
        f"CPU {cpu_model()}, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    if config.import_csv is not None:
        added, kept = import_measured(config.import_csv, config.store_path, labels)
        print(f"imported {added} measured evaluations from {config.import_csv} ({kept} already in the store)")
    total = len(jobs) * float(config.time_budget or 0)
    try:
        shown = "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]"
        with tqdm(total=total, desc="clock", bar_format=shown, disable=not config.progress) as bar:
            results = run_all(jobs, min(config.workers, len(jobs)), bar)
    except EvaluationError as exc:
        print(f"bench_search: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\nbench_search: stopped; finished evaluations are in {config.store_path}: rerun to continue",
            file=sys.stderr,
        )
        results = []
    if results:
        figures = judge(results, table)
        text = summary(config, results, figures, table, command)
        write_runs(out / "runs.csv", results, figures)
        (out / "summary.md").write_text(text)
        print(text)
    if config.export:  # also when stopped: every evaluation finished so far
        count = export_measured(config, labels, command)
        print(f"exported {count} measured evaluations to {config.export}", flush=True)
    return 0 if results else 130


if __name__ == "__main__":
    sys.exit(main())
