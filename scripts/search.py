r"""Search architectures with one agent on one env, into a run directory that survives being killed.

Example::

    nas-search --env NAS-CIFAR10-v0 --env-kwargs fidelity=proxy num_layers=6 \
        --agent reinforce --agent-kwargs batch_size=8 --budget 400 --seed 0 --out runs/rl0
    nas-search --out runs/rl0 --resume            # after a crash or kill: continue exactly

Writes to ``--out``: ``results.sqlite`` (every evaluation), ``evaluations.csv`` (one row per
evaluation in order), ``checkpoint.pt`` (agent state, ``torch.load(weights_only=True)``),
``best.json`` (top architectures, what the reward is, the fidelity, the accuracy, and the
``nas-retrain`` command for each) and ``config.json`` (the resolved configuration).

Before the first child it prints its plan: reward, fidelity, device, precision, the seconds per
child measured on this machine and the ETA. Ctrl-C or SIGTERM stop it cleanly (one line says how
to continue); ``--time-budget SECONDS`` stops it at a wall-clock deadline.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

from agents.base import AGENT_NAMES, SearchAgent, make_agent
from nas_env.errors import DatasetError, NASEnvError, check_choice
from scripts._cli import (
    TIME_BUDGET_CAP,
    OneLineParser,
    UsageError,
    add_dataclass_arguments,
    env_parameters,
    given_values,
)
from scripts._cli import make_env as make_cli_env
from scripts._plan import Plan, evaluation_of
from scripts._search_run import (
    BEST,
    CHECKPOINT,
    CONFIG,
    CSV_FILE,
    STORE,
    Stop,
    raise_terminated,
    run,
    write_config,
)

RESUME_MAY_CHANGE = ("budget", "time_budget", "resume", "progress", "checkpoint_every", "top_k")
"""Settings that ``--resume`` may change; the others must match the saved run."""


@dataclass(frozen=True)
class SearchConfig:
    """Settings of one search run (each is a command-line flag)."""

    out: str | None = None
    """Run directory (created; must be empty unless --resume)."""
    env: str = "NAS-CIFAR10-v0"
    """Gymnasium env id; "module:Id" imports module first (e.g. tests.synthetic:NAS-Synthetic-v0)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Env constructor arguments, e.g. fidelity=smoke num_layers=2 (cache_path defaults into --out)."""
    agent: str = "reinforce"
    """Search agent: reinforce, random, evolution, ppo, a2c, dqn or maskable_ppo."""
    agent_kwargs: dict[str, Any] = field(default_factory=dict)
    """Agent settings, e.g. batch_size=8 learning_rate=6e-4 (see docs/agents.md)."""
    budget: int | None = None
    """Architectures to evaluate in total (required for a new run unless --time-budget; may be raised
    on --resume)."""
    time_budget: float | None = None
    """Wall-clock seconds this invocation may search; it then stops cleanly, best.json up to date."""
    seed: int = 0
    """Root seed of the agent and the env."""
    resume: bool = False
    """Continue the run in --out from its last checkpoint."""
    checkpoint_every: int = 1
    """Save the agent every this many evaluations (and at the end)."""
    top_k: int = 10
    """Architectures listed in best.json."""
    progress: bool = True
    """Show a progress bar."""
    backend: str = "auto"
    """Where children train: local (this process), pool (worker processes), ray (a Ray cluster;
    RAY_ADDRESS joins one), or auto: pool with one single-thread worker per core (at most one per
    child of a batch) for --agent reinforce when children train on a multi-core CPU, else local."""
    replicas: int = 1
    """K controller replicas pushing gradients asynchronously, as Ray actors (--agent reinforce)."""
    shards: int = 1
    """S parameter-server shards holding the controller's parameters (--agent reinforce)."""
    children_per_replica: int | None = None
    """m children each replica samples per gradient (default: the agent's batch_size)."""
    promote: str = ""
    """Successive halving around --agent: fidelities to promote the best children to, cheapest first
    (e.g. paper; on NB201's table a column such as cifar10_valid_acc_200ep)."""
    promote_eta: int = 3
    """Successive halving: keep the best 1/eta at each fidelity."""
    promote_bracket: int = 9
    """Successive halving: evaluations at the env's own fidelity between promotions."""

    def __post_init__(self) -> None:
        """Check the values that need no env, naming the bad one."""
        if not self.out:
            raise UsageError("--out DIR is required")
        check_choice("--agent", self.agent, AGENT_NAMES)
        if self.budget is not None and (isinstance(self.budget, bool) or self.budget <= 0):
            raise UsageError(f"--budget {self.budget} must be a positive number of architectures")
        if self.budget is None and self.time_budget is None and not self.resume:
            raise UsageError("--budget N or --time-budget SECONDS is required for a new run")
        if self.time_budget is not None and not 0 < self.time_budget < 1e9:
            raise UsageError(f"--time-budget {self.time_budget} must be a positive number of seconds")
        if self.checkpoint_every < 1 or self.top_k < 1:
            raise UsageError("--checkpoint-every and --top-k must be at least 1")
        check_choice("--backend", self.backend, ("auto", "local", "pool", "ray"))
        if self.replicas < 1 or self.shards < 1 or (self.children_per_replica or 1) < 1:
            raise UsageError("--replicas, --shards and --children-per-replica must be at least 1")


# ---- configuration ----------------------------------------------------------------------------------


def resolve_config(argv: Sequence[str] | None) -> SearchConfig:
    """Parse the command line; on ``--resume``, merge it into the saved run's configuration.

    Raises:
        UsageError: A bad or conflicting argument, a run directory that is not empty without
            ``--resume``, or nothing to resume.
    """
    parser = OneLineParser(
        prog="nas-search", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_dataclass_arguments(parser, SearchConfig)
    given = given_values(parser.parse_args(argv))
    out = Path(given.get("out") or ".")
    if not given.get("resume"):
        if "out" in given and out.exists() and any(out.iterdir()):
            raise UsageError(
                f"--out {out} already holds a run; add --resume to continue it or pick another DIR"
            )
        return SearchConfig(**given)
    if not (out / CONFIG).is_file():
        raise UsageError(f"--resume: no run to resume in {out} ({CONFIG} not found)")
    saved = json.loads((out / CONFIG).read_text())["search"]
    for key, value in given.items():
        if key not in RESUME_MAY_CHANGE and key != "out" and value != saved.get(key):
            raise UsageError(
                f"--resume: --{key.replace('_', '-')} {value!r} differs from the saved run's "
                f"{saved.get(key)!r}; drop it to resume as saved"
            )
    return SearchConfig(**{**saved, **given})


def make_env(config: SearchConfig) -> tuple[gym.Env[Any, Any], dict[str, Any]]:
    """Make the env, pointing its results store into the run directory when it has one.

    Raises:
        UsageError: Unknown env id, a bad env argument or missing data (one line each).
    """
    kwargs = dict(config.env_kwargs)
    _, params = env_parameters(config.env)
    if "cache_path" in params and "cache_path" not in kwargs:
        kwargs["cache_path"] = str(Path(config.out or ".") / STORE)
    return make_cli_env(config.env, kwargs), kwargs


def build(config: SearchConfig) -> tuple[SearchConfig, gym.Env[Any, Any], dict[str, Any], SearchAgent]:
    """Env and agent from the configuration, and the configuration with ``--backend auto`` resolved.

    Raises:
        UsageError: A bad setting.
        DatasetError: Missing data (found when the env is made or first reset).
    """
    env, env_kwargs = make_env(config)
    config = resolve_backend(config, env)
    try:
        agent = make_search_agent(config, env)
    except DatasetError:  # the agent's first reset looks for the dataset
        env.close()
        raise
    except (TypeError, ValueError, NASEnvError) as exc:
        env.close()
        raise UsageError(f"--agent {config.agent} --agent-kwargs {config.agent_kwargs}: {exc}") from exc
    return config, env, env_kwargs, agent


def resolve_backend(config: SearchConfig, env: gym.Env[Any, Any]) -> SearchConfig:
    """``--backend auto`` made concrete (and saved so, so that ``--resume`` runs the same way).

    ``pool`` for the paper's controller (one replica, one shard, no ``--promote``) when its
    children train (a recipe, not a table or a zero-cost score) on a CPU with several cores: one
    single-thread worker per core trains the children of a batch side by side, the set-up measured
    fastest on 2-core CPUs (docs/parallel.md), with the same architectures and rewards for a seed.
    ``local`` otherwise: table and zero-cost rewards cost too little to ship to workers, and the
    other agents evaluate one child at a time.
    """
    if config.backend != "auto":
        return config
    from nas_env.backends.threads import available_cpus
    from nas_env.training.ptb import PtbFidelity
    from nas_env.training.recipes import Fidelity

    evaluator = getattr(evaluation_of(env), "evaluator", None)
    trains = isinstance(getattr(evaluator, "fidelity", None), Fidelity | PtbFidelity)
    on_cpu = str(getattr(evaluator, "device", "cpu")).startswith("cpu")
    controller = (config.agent, config.promote, config.replicas, config.shards) == ("reinforce", "", 1, 1)
    pool = trains and on_cpu and controller and available_cpus() > 1
    return dataclasses.replace(config, backend="pool" if pool else "local")


def batch_of(config: SearchConfig) -> int:
    """m, the children the paper's controller samples per update (``--children-per-replica``)."""
    from agents.reinforce import ReinforceConfig

    default = config.agent_kwargs.get("batch_size", ReinforceConfig.batch_size)
    return int(config.children_per_replica or default)


def make_search_agent(config: SearchConfig, env: gym.Env[Any, Any]) -> SearchAgent:
    """The agent; ``reinforce`` with a parallel setting runs :mod:`agents.distributed` (K = S = 1: same run).

    Raises:
        UsageError: ``--backend``, ``--replicas``, ``--shards`` or ``--children-per-replica`` with
            another agent (give those ``--env-kwargs backend=...`` instead).
    """
    parallel = (config.backend, config.replicas, config.shards, config.children_per_replica)
    if config.promote:
        if parallel != ("local", 1, 1, None):
            raise UsageError(
                "--promote runs one env: drop --backend/--replicas/--shards/--children-per-replica"
            )
        return make_agent(
            "halving",
            env,
            seed=config.seed,
            rungs=tuple(r.strip() for r in config.promote.split(",")),
            eta=config.promote_eta,
            bracket=config.promote_bracket,
            base=config.agent,
            base_kwargs=dict(config.agent_kwargs),
        )
    if parallel == ("local", 1, 1, None):
        return make_agent(config.agent, env, seed=config.seed, **config.agent_kwargs)
    if config.agent != "reinforce":
        raise UsageError(
            "--backend/--replicas/--shards/--children-per-replica need --agent reinforce; other agents "
            "evaluate one child at a time (use --env-kwargs backend=ray to run those children on Ray)"
        )
    from agents.distributed import DistributedReinforceAgent

    kwargs = dict(config.agent_kwargs)
    if config.children_per_replica is not None:
        kwargs["batch_size"] = config.children_per_replica
    if config.backend != "local":
        kwargs.setdefault("child_backend", config.backend)
    if config.backend == "pool":  # a worker per core, no more than a batch keeps busy
        kwargs.setdefault("child_backend_kwargs", {"num_workers": workers_of(config, env)})
    return DistributedReinforceAgent(
        env, config.seed, replicas=config.replicas, shards=config.shards, **kwargs
    )


def workers_of(config: SearchConfig, env: gym.Env[Any, Any]) -> int:
    """How many children train at once: the ``--backend pool`` workers, or the env's own backend's."""
    if config.backend == "pool" and config.agent == "reinforce":
        from nas_env.backends.threads import available_cpus

        return min(available_cpus(), batch_of(config))
    backend = getattr(evaluation_of(env), "backend", None)
    return int(getattr(backend, "num_workers", 1) or 1)


def discard_rejected(out: Path) -> None:
    """Remove the results store that making the env left in a new run directory, then the folder if empty.

    So that the same command can run again once the problem is fixed (a folder holding a store
    counts as a run).
    """
    for path in out.glob(f"{STORE}*") if out.is_dir() else ():
        path.unlink(missing_ok=True)
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nas-search``; returns the exit status (2 for a bad command line).

    Ctrl-C gives 130 and SIGTERM 143, each after one line saying what was kept and how to resume.
    """
    started: list[Path] = []  # the run directory, once config.json is written
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        return _main(argv, started)
    except (KeyboardInterrupt, Stop) as exc:  # between the steps that report their own stop
        word, status = (exc.reason, exc.exit_status) if isinstance(exc, Stop) else ("interrupted", 130)
        if started:
            out = started[0]
            print(
                f"nas-search: {word}; evaluations so far are kept in {out}/{STORE}; continue with: "
                f"nas-search --out {out} --resume",
                file=sys.stderr,
            )
        else:
            print(f"nas-search: {word} before the run started; nothing to keep", file=sys.stderr)
        return status
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None, started: list[Path]) -> int:
    new_run: Path | None = None  # set while a new run's env is made: a failure leaves no trace
    try:  # every check of the command line happens here, before any evaluation
        config = resolve_config(argv)
        out = Path(config.out or ".")
        new_run = None if config.resume else out
        config, env, env_kwargs, agent = build(config)
    except (UsageError, ValueError, NASEnvError) as exc:
        if new_run is not None:
            discard_rejected(new_run)
        print(f"nas-search: error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, DatasetError) else 2
    except KeyboardInterrupt:
        if new_run is not None:
            discard_rejected(new_run)
        print("nas-search: interrupted before the first child; nothing to keep", file=sys.stderr)
        return 130
    out.mkdir(parents=True, exist_ok=True)
    resume = f"nas-search --out {out} --resume"
    if config.resume and not (out / CHECKPOINT).is_file():
        print(
            f"nas-search: --resume: no checkpoint in {out} yet (no child finished); starting the run "
            "from its saved settings",
            file=sys.stderr,
        )
    elif config.resume:
        agent.load(out / CHECKPOINT)
    budget = int(config.budget or TIME_BUDGET_CAP)
    try:
        write_config(out, config, env_kwargs, agent, None)  # from now on, --resume finds the run
        started.append(out)
        plan = Plan.of(env, config.env, dict(config.env_kwargs), config.agent, workers_of(config, env))
        print("\n".join(plan.head(budget, len(agent.history))), flush=True)
        plan.measure()  # random inputs: no data needed, so the ETA comes before the data loads
        print("\n".join(plan.timing(budget, len(agent.history), config.time_budget)), flush=True)
        load_data = getattr(getattr(evaluation_of(env), "evaluator", None), "load_data", None)
        if load_data is not None:  # a corrupt dataset fails here, before any child, as one line
            load_data()
    except (KeyboardInterrupt, NASEnvError) as exc:
        agent.close()
        env.close()
        if isinstance(exc, NASEnvError):
            print(f"nas-search: error: {exc}", file=sys.stderr)
            return 1
        print(f"nas-search: interrupted before the first child; resume with: {resume}", file=sys.stderr)
        return 130
    outcome = run(config, env, env_kwargs, agent, plan, budget)
    done = len(outcome.history)
    if outcome.stopped in ("interrupted", "terminated"):
        print(
            f"nas-search: {outcome.stopped} after {done} evaluations, all kept in {out}/{STORE} "
            f"(best.json up to date); continue with: {resume}",
            file=sys.stderr,
        )
        return outcome.exit_status
    if not outcome.history:
        print(f"nas-search: {outcome.stopped} reached before the first child finished", file=sys.stderr)
        return 0
    best = json.loads((out / BEST).read_text())["top"][0]
    accuracy = f" (accuracy {best['accuracy_percent']:.2f}%)" if "accuracy_percent" in best else ""
    why = "time budget reached" if outcome.stopped == "time budget" else "budget reached"
    print(f"{why}: {done} architectures; best reward {best['reward']:.4f}{accuracy}: {best['arch']}")
    print(f"results in {out}/ ({CSV_FILE}, {BEST}, {CHECKPOINT}, {STORE}, {CONFIG})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
