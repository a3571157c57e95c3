r"""End to end: search with trained children for a wall-clock budget; judge what each search returns.

Each policy x seed searches ``--env`` (``NAS-Bench-201-v0`` in trained mode, or ``NAS-CIFAR10-v0``)
at ``--fidelity`` (or a ladder with ``--promote``: successive halving, the top rung returned) until
its clock reaches ``--time-budget`` seconds, and returns its best architecture by its own search
signal. Then (``_search_report``):

- **NAS-Bench-201**: the cell is looked up in the NB201 table (``--table``; default: the one found
  under ``$NAS_ENV_DATA``): its 200-epoch test accuracy and its rank among the 15,625 cells, per
  policy mean ± std over seeds, printed beside NB201's published figures.
- **The CNN space** (no table): each returned architecture is retrained at ``--reference`` (default
  ``long``: 10k images x 10 epochs at 32x32, bench_fidelity's reference) with ``--reference-seeds``
  training seeds, and each policy is compared with random search at the same seed and clock.

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
Examples (the real measurements and their cost: ``docs/end_to_end.md``)::

    NAS_ENV_DATA=../shared/data python benchmarks/bench_search.py --policies random,local_search \
        --seeds 3 --time-budget 1800 --store runs/e2e/results.sqlite --out runs/e2e/30min
    NAS_ENV_DATA=../shared/data python benchmarks/bench_search.py --env NAS-CIFAR10-v0 \
        --policies random,screened_evolution --seeds 3 --time-budget 1800 --out runs/e2e_cnn/30min
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _fidelity_runs import parse_preset
from _search_report import (
    REPORT_COLUMN,
    Figures,
    judge_by_retraining,
    judge_by_table,
    reference_labels,
    summary,
    write_runs,
)
from bench_fidelity import CNN_REFERENCE, REFERENCE_LABEL
from tqdm import tqdm

from agents.base import AGENT_NAMES
from nas_env.errors import EvaluationError, NASEnvError, check_choice
from nas_env.evaluators.cifar import CifarTrainingEvaluator
from nas_env.evaluators.replay import ZERO_COST_PREFIX
from nas_env.evaluators.tabular import find_nb201_table, load_nb201_table
from nas_env.evaluators.zero_cost import ZERO_COST_METRIC
from nas_env.threads import torch_threads
from nas_env.training.calibration import cpu_model
from nas_env.training.recipes import FIDELITIES, NB201_FIDELITIES, Fidelity
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
    REPLAY_ENV_IDS,
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

PRESETS: dict[str, dict[str, Fidelity]] = {"NAS-Bench-201-v0": NB201_FIDELITIES, "NAS-CIFAR10-v0": FIDELITIES}
"""The envs a benchmark searches, and the presets their children train at."""
LONG_REFERENCE = "long"
"""``--reference`` of the CNN space's long recipe: bench_fidelity's 10k images x 10 epochs at 32x32."""
POLICIES = tuple(name for name in AGENT_NAMES if name != "halving")
"""Policies a run may use (successive halving comes from ``--promote``, around any of them)."""


@dataclass(frozen=True)
class BenchSearchConfig:
    """Settings of the end-to-end benchmark (each is a command-line flag)."""

    out: str | None = None
    """Output directory: runs.csv (one row per run), summary.md, config.json."""
    time_budget: float | None = None
    """Wall-clock seconds per run: its charged seconds / --workers (required)."""
    env: str = "NAS-Bench-201-v0"
    """The env searched: NAS-Bench-201-v0 (judged by its table) or NAS-CIFAR10-v0 (by retraining)."""
    policies: str = "random,local_search"
    """Comma-separated search policies (agents.AGENT_NAMES but halving; see --promote)."""
    seeds: int = 3
    """Runs per policy, with seeds F..F+N-1 (F: --first-seed)."""
    first_seed: int = 0
    """The first seed: a later invocation adds seeds without rerunning the earlier ones (with its
    own --store, a seed's children are trained afresh, so seeds differ in training noise too)."""
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
    reference: str | None = None
    """CNN space: the recipe retraining the returned architectures: long (10k x 10 epochs, 32x32;
    the default) or a preset with overrides (proxy:epochs=8)."""
    reference_seeds: int | None = None
    """CNN space: training seeds of each retraining at --reference (default 2)."""
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
        check_choice("--env", self.env, tuple(PRESETS))
        check_choice("--fidelity", self.fidelity, tuple(PRESETS[self.env]))
        for rung in self.rungs:
            check_choice("--promote entry", rung, tuple(PRESETS[self.env]))
        self._check_judge()
        for flag, value in (("--seeds", self.seeds), ("--workers", self.workers)):
            if value < 1:
                raise UsageError(f"{flag} {value} must be at least 1")
        if self.first_seed < 0:
            raise UsageError(f"--first-seed {self.first_seed} must be at least 0")
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

    def _check_judge(self) -> None:
        """Judge settings that fit the env: the table for NB201, the reference retraining for CNN."""
        if self.env == "NAS-Bench-201-v0":
            for flag, value in (("--reference", self.reference), ("--reference-seeds", self.reference_seeds)):
                if value is not None:
                    raise UsageError(f"{flag} applies to --env NAS-CIFAR10-v0 (NB201 is judged by its table)")
            return
        if self.table is not None:
            raise UsageError(
                "--table applies to --env NAS-Bench-201-v0 (the CNN space is judged by retraining)"
            )
        if self.reference_seeds is not None and self.reference_seeds < 1:
            raise UsageError(f"--reference-seeds {self.reference_seeds} must be at least 1")
        if self.reference not in (None, LONG_REFERENCE):
            parse_preset(str(self.reference))  # a bad preset, field or value: one line naming it

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

    @property
    def reference_spec(self) -> str:
        """CNN space: ``--reference``, or ``long`` when not given."""
        return self.reference or LONG_REFERENCE

    @property
    def reference_count(self) -> int:
        """CNN space: training seeds per retraining (``--reference-seeds``, default 2)."""
        return 2 if self.reference_seeds is None else self.reference_seeds

    def reference_recipe(self) -> tuple[Fidelity, str]:
        """CNN space: the recipe retraining the returned architectures, and how to describe it."""
        if self.reference_spec == LONG_REFERENCE:
            return CNN_REFERENCE, f"{REFERENCE_LABEL} (bench_fidelity's reference)"
        name, overrides = parse_preset(self.reference_spec)
        return FIDELITIES[name].replace(**overrides), f"--reference {self.reference_spec}"

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
        env_id, kwargs = REPLAY_ENV_IDS[config.env], {"replay_csv": config.replay}
        screen_path = Path(str(config.out)) / "replay_screen.sqlite"
        screen_store = replay_screen_store(config.replay, screen_path, config.env)
    else:
        env_id = config.env
        own = {"table_path": None} if config.env == "NAS-Bench-201-v0" else {"reward": "accuracy"}
        kwargs = {**own, "cache_path": config.store_path, "device": config.device}
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
    seeds = range(config.first_seed, config.first_seed + config.seeds)
    jobs = [Job(**{**asdict(job), "seed": seed}) for seed in seeds for job in bases]
    return jobs, labels


# ---- command line ------------------------------------------------------------------------------------


def parse_config(argv: Sequence[str]) -> BenchSearchConfig:
    """Parse the command line into a :class:`BenchSearchConfig`."""
    parser = OneLineParser(
        prog="bench_search", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_dataclass_arguments(parser, BenchSearchConfig)
    return BenchSearchConfig(**given_values(parser.parse_args(argv)))


Judge = Callable[[Sequence[RunResult]], list[Figures]]


def make_judge(config: BenchSearchConfig) -> tuple[Judge, str, Labels]:
    """How the returned architectures are judged, what judges them (for the summary), and the store
    labels of the judge's own evaluations (the CNN space's retrainings, exported and imported too).

    Raises:
        DatasetError: No NB201 table found, or one without the 200-epoch test accuracy.
    """
    if config.env == "NAS-Bench-201-v0":
        table = str(config.table or find_nb201_table())
        load_nb201_table(table).column(REPORT_COLUMN)
        return (lambda results: judge_by_table(results, table)), table, {}
    recipe, described = config.reference_recipe()
    evaluator = CifarTrainingEvaluator(recipe, device=config.device)
    spec, seeds = config.reference_spec, config.reference_count

    def judge(results: Sequence[RunResult]) -> list[Figures]:
        return judge_by_retraining(
            results, evaluator, spec, seeds, config.store_path, config.workers, config.replay
        )

    return judge, described, reference_labels(evaluator, spec, seeds)


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or replay) every policy x seed, print and write the figures; 2 on a bad argument."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = shlex.join(["python", "benchmarks/bench_search.py", *args])
    try:
        config = parse_config(args)
        Path(str(config.out)).mkdir(parents=True, exist_ok=True)
        with torch_threads(1):  # as in the runs: precision="auto" is chosen per thread count
            judge, judged_by, judge_labels = make_judge(config)
            jobs, labels = prepare(config)
        labels |= judge_labels
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
        try:
            figures = judge(results)
        except NASEnvError as exc:  # a replay without a returned architecture's reference row
            print(f"bench_search: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(
                f"\nbench_search: stopped while retraining; finished ones are in {config.store_path}: "
                "rerun to continue",
                file=sys.stderr,
            )
            return 130
        text = summary(config, results, figures, judged_by, command)
        write_runs(out / "runs.csv", results, figures)
        (out / "summary.md").write_text(text)
        print(text)
    if config.export:  # also when stopped: every evaluation finished so far
        count = export_measured(config, labels, command)
        print(f"exported {count} measured evaluations to {config.export}", flush=True)
    return 0 if results else 130


if __name__ == "__main__":
    sys.exit(main())
