r"""Search architectures with one agent on one env, into a run directory that survives being killed.

Example::

    nas-search --env NAS-CIFAR10-v0 --env-kwargs fidelity=proxy num_layers=6 \
        --agent reinforce --agent-kwargs batch_size=8 --budget 400 --seed 0 --out runs/rl0
    nas-search --out runs/rl0 --resume            # after a crash or kill: continue exactly

Writes to ``--out``: ``results.sqlite`` (every evaluation), ``evaluations.csv`` (one row per
evaluation in order), ``checkpoint.pt`` (agent state, ``torch.load(weights_only=True)``),
``best.json`` (top architectures, with the ``nas-retrain`` command for each) and ``config.json``
(the resolved configuration).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import inspect
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

import nas_env
from agents.base import AGENT_NAMES, Evaluation, SearchAgent, make_agent
from nas_env.errors import NASEnvError, check_choice
from scripts._cli import OneLineParser, add_dataclass_arguments, given_values

CONFIG, CHECKPOINT, CSV_FILE, BEST, STORE = (
    "config.json",
    "checkpoint.pt",
    "evaluations.csv",
    "best.json",
    "results.sqlite",
)
RESUME_MAY_CHANGE = ("budget", "resume", "progress", "checkpoint_every", "top_k")
"""Settings that ``--resume`` may change; the others must match the saved run."""


class UsageError(ValueError):
    """A bad command line; reported as one line before any work."""


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
    """Architectures to evaluate in total (required for a new run; may be raised on --resume)."""
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
    backend: str = "local"
    """Where children train: local, pool (worker processes) or ray (a Ray cluster; RAY_ADDRESS joins one)."""
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
        if self.budget is None and not self.resume:
            raise UsageError("--budget N is required for a new run")
        if self.checkpoint_every < 1 or self.top_k < 1:
            raise UsageError("--checkpoint-every and --top-k must be at least 1")
        check_choice("--backend", self.backend, ("local", "pool", "ray"))
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
        UsageError: Unknown env id or a bad env argument.
    """
    module, _, env_id = config.env.rpartition(":")
    try:
        if module:  # gym's "module:EnvId" form: importing the module registers the id
            importlib.import_module(module)
        spec = gym.spec(env_id)
    except (gym.error.Error, ImportError) as exc:
        raise UsageError(f"--env {config.env!r}: {exc}") from exc
    kwargs = dict(config.env_kwargs)
    creator = spec.entry_point if callable(spec.entry_point) else load_env_creator(str(spec.entry_point))
    params = inspect.signature(creator).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if not takes_any:
        for key in kwargs:
            check_choice(f"--env-kwargs {key}", key, [p for p in params if p != "self"])
    if "cache_path" in params and "cache_path" not in kwargs:
        kwargs["cache_path"] = str(Path(config.out or ".") / STORE)
    try:
        return gym.make(env_id, **kwargs), kwargs
    except (TypeError, ValueError, NASEnvError) as exc:
        raise UsageError(f"--env {config.env} --env-kwargs {config.env_kwargs}: {exc}") from exc


def build(config: SearchConfig) -> tuple[gym.Env[Any, Any], dict[str, Any], SearchAgent]:
    """Env and agent from the configuration, or a :class:`UsageError` for a bad setting."""
    env, env_kwargs = make_env(config)
    try:
        agent = make_search_agent(config, env)
    except (TypeError, ValueError, NASEnvError) as exc:
        env.close()
        raise UsageError(f"--agent {config.agent} --agent-kwargs {config.agent_kwargs}: {exc}") from exc
    return env, env_kwargs, agent


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
    return DistributedReinforceAgent(
        env, config.seed, replicas=config.replicas, shards=config.shards, **kwargs
    )


def git_commit() -> str:
    """The repository's commit, or "" outside a git checkout."""
    try:
        root = Path(__file__).resolve().parents[1]
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# ---- outputs -----------------------------------------------------------------------------------------


class RunWriter:
    """Writes the CSV, best.json and checkpoints of a run directory as evaluations arrive."""

    def __init__(self, out: Path, config: SearchConfig, agent: SearchAgent, space: str = "cnn") -> None:
        self.out = out
        self.retrain = "nas-retrain" + ("" if space == "cnn" else f" --space {space}")
        self.config = config
        self.agent = agent
        self._columns: list[str] | None = None
        self._file: Any = None
        self._since_checkpoint = 0

    def rewrite_csv(self, history: Sequence[Evaluation]) -> None:
        """Start ``evaluations.csv`` over from ``history`` (a resumed run's checkpoint is the truth)."""
        (self.out / CSV_FILE).unlink(missing_ok=True)
        for evaluation in history:
            self.write_row(evaluation)

    def write_row(self, evaluation: Evaluation) -> None:
        """Append one row (flushed, so a kill loses at most the row being written)."""
        if self._columns is None:
            self._columns = ["index", "arch", "reward", *[k for k in evaluation.info if k != "arch"]]
            self._file = (self.out / CSV_FILE).open("w", newline="")
            csv.writer(self._file).writerow(self._columns)
        row = {
            "index": evaluation.index,
            "arch": evaluation.arch,
            "reward": evaluation.reward,
            **evaluation.info,
        }
        csv.writer(self._file).writerow([row.get(c, "") for c in self._columns])
        self._file.flush()

    def __call__(self, evaluation: Evaluation) -> None:
        """The agent's callback: CSV row, then a checkpoint every ``checkpoint_every`` evaluations."""
        self.write_row(evaluation)
        self._since_checkpoint += 1
        if self._since_checkpoint >= self.config.checkpoint_every:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Save the agent and best.json."""
        self.agent.save(self.out / CHECKPOINT)
        self.write_best()
        self._since_checkpoint = 0

    def write_best(self) -> None:
        """Top architectures (each once, by its best reward) with a retrain command."""
        key = self.agent.rank_key
        best: dict[str, Evaluation] = {}
        for e in self.agent.history:
            if e.arch not in best or key(e) > key(best[e.arch]):
                best[e.arch] = e
        top = sorted(best.values(), key=lambda e: (tuple(-k for k in key(e)), e.index))[: self.config.top_k]
        payload = {
            "env": self.config.env,
            "agent": self.config.agent,
            "num_evaluations": len(self.agent.history),
            "top": [
                {
                    "rank": r + 1,
                    "arch": e.arch,
                    "reward": e.reward,
                    "index": e.index,
                    **_metrics(e.info),
                    "retrain": f'{self.retrain} --arch "{e.arch}"',
                }
                for r, e in enumerate(top)
            ],
        }
        _write_json(self.out / BEST, payload)

    def close(self) -> None:
        """Close the CSV file."""
        if self._file is not None:
            self._file.close()


def _metrics(info: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if k not in ("arch", "error", "cached", "seed")}


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(path)


# ---- the run -------------------------------------------------------------------------------------------


def run(
    config: SearchConfig, env: gym.Env[Any, Any], env_kwargs: dict[str, Any], agent: SearchAgent
) -> list[Evaluation]:
    """(Resume,) search and write every output; returns the whole history."""
    out = Path(config.out or ".")
    out.mkdir(parents=True, exist_ok=True)
    if config.resume and (out / CHECKPOINT).is_file():
        agent.load(out / CHECKPOINT)
    _write_json(
        out / CONFIG,
        {
            "search": asdict(config) | {"resume": False},
            "env_kwargs_resolved": env_kwargs,
            "agent_config": agent.config_dict(),
            "git_commit": git_commit(),
            "versions": {"nas_env": nas_env.__version__, "gymnasium": gym.__version__, "python": sys.version},
        },
    )
    writer = RunWriter(out, config, agent, str(getattr(getattr(env.unwrapped, "space", None), "name", "cnn")))
    writer.rewrite_csv(agent.history)
    budget = int(config.budget or 0)
    bar = _progress_bar(config, agent, budget)
    try:

        def on_evaluation(evaluation: Evaluation) -> None:
            writer(evaluation)
            bar(evaluation)

        history = agent.search(budget, callback=on_evaluation)
        writer.checkpoint()
    finally:
        writer.close()
        agent.close()
        env.close()
    return history


def _progress_bar(config: SearchConfig, agent: SearchAgent, budget: int) -> Any:
    """A tqdm bar (archs done, best reward, seconds per child) as an evaluation callback."""
    if not config.progress or config.agent_kwargs.get("progress_bar"):
        return lambda e: None
    from tqdm.auto import tqdm

    bar = tqdm(total=budget, initial=len(agent.history), unit="arch", desc=config.agent, dynamic_ncols=True)
    state = {"best": max((e.reward for e in agent.history), default=float("-inf")), "t": time.perf_counter()}

    def update(evaluation: Evaluation) -> None:
        now = time.perf_counter()
        state["best"] = max(state["best"], evaluation.reward)
        bar.set_postfix(best=f"{state['best']:.4f}", s_per_child=f"{now - state['t']:.2f}", refresh=False)
        state["t"] = now
        bar.update(1)
        if bar.n >= budget:
            bar.close()

    return update


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nas-search``; returns the exit status (2 for a bad command line)."""
    created: Path | None = None
    try:  # every check of the command line happens here, before any evaluation
        config = resolve_config(argv)
        out = Path(config.out or ".")
        created = None if out.exists() else out
        env, env_kwargs, agent = build(config)
    except (UsageError, ValueError) as exc:
        if created is not None and created.is_dir() and not any(created.iterdir()):
            created.rmdir()  # the env's results store made it; leave no trace of a rejected run
        print(f"nas-search: error: {exc}", file=sys.stderr)
        return 2
    history = run(config, env, env_kwargs, agent)
    best = agent.best()
    print(f"{len(history)} architectures; best reward {best.reward:.4f}: {best.arch}")
    print(f"results in {config.out}/ ({CSV_FILE}, {BEST}, {CHECKPOINT}, {STORE}, {CONFIG})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
