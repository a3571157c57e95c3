"""The run of ``nas-search``: its plan, the outputs it keeps up to date, and its clean stops.

Split from :mod:`scripts.search` (which reads the command line and builds env and agent).
"""

from __future__ import annotations

import csv
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import gymnasium as gym

import nas_env
from agents.base import Evaluation, SearchAgent
from scripts._cli import git_commit
from scripts._plan import Plan, duration

if TYPE_CHECKING:
    from scripts.search import SearchConfig

CONFIG, CHECKPOINT, CSV_FILE, BEST, STORE = (
    "config.json",
    "checkpoint.pt",
    "evaluations.csv",
    "best.json",
    "results.sqlite",
)


class Stop(BaseException):
    """Ends a search from a signal handler (SIGTERM, the ``--time-budget`` alarm), like Ctrl-C does.

    A ``BaseException``, as ``KeyboardInterrupt`` is, so that no ``except Exception`` on the way
    swallows it.
    """

    def __init__(self, reason: str, exit_status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_status = exit_status


@dataclass
class Outcome:
    """How a run ended: ``"budget"``, ``"time budget"``, ``"interrupted"`` or ``"terminated"``."""

    history: list[Evaluation]
    stopped: str
    exit_status: int = 0


# ---- outputs -----------------------------------------------------------------------------------------


class RunWriter:
    """Writes the CSV, best.json and checkpoints of a run directory as evaluations arrive."""

    def __init__(self, out: Path, config: SearchConfig, agent: SearchAgent, plan: Plan) -> None:
        self.out = out
        self.config = config
        self.agent = agent
        self.plan = plan
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

    def retrain_command(self, evaluation: Evaluation) -> str | None:
        """The ``nas-retrain`` command that trains ``evaluation``'s child again with its seed and fidelity.

        At the search's fidelity and seed it gives the same validation accuracy, plus the test
        accuracy; ``--fidelity paper`` trains it with the paper's full recipe instead. A zero-cost
        search never trained its children: its command trains at ``proxy``, the cheapest preset
        that ranks (``nas-retrain`` has no zero-cost mode).
        """
        space = self.plan.retrain_space
        if space is None or self.plan.fidelity is None:
            return None
        rung = evaluation.info.get("fidelity")  # successive halving: the rung's fidelity
        fidelity = rung if isinstance(rung, str) and rung != "base" else self.plan.fidelity
        if fidelity == "zero_cost":
            fidelity = "proxy"
        command = "nas-retrain" + ("" if space == "cnn" else f" --space {space}")
        seed = evaluation.info.get("seed")
        seed_flag = f" --seed {seed}" if isinstance(seed, int) else ""
        return f'{command} --arch "{evaluation.arch}" --fidelity {fidelity}{seed_flag}'

    def write_best(self, stopped: str | None = None) -> None:
        """Top architectures (each once, by its best rank), what the reward is, and a retrain command.

        The first entry is the architecture the search returns (:meth:`SearchAgent.best`; for
        successive halving, from the highest fidelity reached).
        """
        key = self.agent.rank_key
        best: dict[str, Evaluation] = {}
        for e in self.agent.history:
            if e.arch not in best or key(e) > key(best[e.arch]):
                best[e.arch] = e
        top = sorted(best.values(), key=lambda e: (tuple(-k for k in key(e)), e.index))[: self.config.top_k]
        entries = []
        for rank, e in enumerate(top, 1):
            entry = {"rank": rank, "arch": e.arch, **self.plan.accuracy_fields(e.info), "reward": e.reward}
            entry |= {"index": e.index, **_metrics(e.info)}
            command = self.retrain_command(e)
            if command is not None:
                entry["retrain"] = command
            entries.append(entry)
        payload = {
            "env": self.config.env,
            "agent": self.config.agent,
            "num_evaluations": len(self.agent.history),
            "stopped": stopped or "running",
            **self.plan.described(),
            "top": entries,
        }
        write_json(self.out / BEST, payload)

    def close(self) -> None:
        """Close the CSV file."""
        if self._file is not None:
            self._file.close()


def _metrics(info: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if k not in ("arch", "error", "cached")}


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically (a kill leaves the previous file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(path)


# ---- stops ---------------------------------------------------------------------------------------------


def raise_terminated(signum: int, frame: FrameType | None) -> None:
    """SIGTERM's handler: stop as Ctrl-C does, with SIGTERM's exit status."""
    raise Stop("terminated", 128 + signal.SIGTERM)


@contextmanager
def stop_signals(time_budget: float | None) -> Iterator[None]:
    """SIGTERM, and the ``--time-budget`` deadline (SIGALRM), raise :class:`Stop` in the main thread."""

    def deadline(signum: int, frame: FrameType | None) -> None:
        raise Stop("time budget", 0)

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    previous_alarm = signal.signal(signal.SIGALRM, deadline)
    if time_budget is not None:
        signal.setitimer(signal.ITIMER_REAL, time_budget)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_alarm)
        signal.signal(signal.SIGTERM, previous)


def write_config(
    out: Path, config: SearchConfig, env_kwargs: dict[str, Any], agent: SearchAgent, plan: Plan | None
) -> None:
    """Write ``config.json``: the settings (what ``--resume`` reads), the resolved env, agent and plan."""
    write_json(
        out / CONFIG,
        {
            "search": asdict(config) | {"resume": False},
            "env_kwargs_resolved": env_kwargs,
            "agent_config": agent.config_dict(),
            **(plan.described() if plan is not None else {}),
            "git_commit": git_commit(),
            "versions": {"nas_env": nas_env.__version__, "gymnasium": gym.__version__, "python": sys.version},
        },
    )


# ---- the run -------------------------------------------------------------------------------------------


def run(
    config: SearchConfig,
    env: gym.Env[Any, Any],
    env_kwargs: dict[str, Any],
    agent: SearchAgent,
    plan: Plan,
    budget: int,
) -> Outcome:
    """(Resume,) search until the budget, the time budget, Ctrl-C or SIGTERM; keep every output.

    Evaluations are in the results store as soon as they finish, and the agent's checkpoint and
    best.json follow every ``checkpoint_every`` of them, so a stop loses at most the children in
    training; ``--resume`` continues from the last checkpoint and takes finished children from the
    store.
    """
    out = Path(config.out or ".")
    writer = RunWriter(out, config, agent, plan)
    bar = progress_bar(config, agent, budget, plan)
    first = first_child_note(plan, budget, len(agent.history))
    stopped, status = "budget", 0
    try:
        with stop_signals(config.time_budget):

            def on_evaluation(evaluation: Evaluation) -> None:
                writer(evaluation)
                bar(evaluation)
                first(evaluation)

            try:
                write_config(out, config, env_kwargs, agent, plan)
                writer.rewrite_csv(agent.history)
                agent.search(budget, callback=on_evaluation)
                writer.checkpoint()
            except KeyboardInterrupt:
                stopped, status = "interrupted", 128 + signal.SIGINT
            except Stop as stop:
                stopped, status = stop.reason, stop.exit_status
        writer.write_best(stopped)  # the checkpoint stays the last whole one: a signal may come mid-step
    finally:
        bar(None)
        writer.close()
        agent.close()
        env.close()
    return Outcome(list(agent.history), stopped, status)


def progress_bar(
    config: SearchConfig, agent: SearchAgent, budget: int, plan: Plan
) -> Callable[[Evaluation | None], None]:
    """A tqdm bar as an evaluation callback (None closes it): children done, best accuracy, s/child."""
    if not config.progress or config.agent_kwargs.get("progress_bar"):
        return lambda e: None
    from tqdm.auto import tqdm

    bar = tqdm(total=budget, initial=len(agent.history), unit="child", desc=config.agent, dynamic_ncols=True)
    state: dict[str, Any] = {"best": None, "start": time.perf_counter(), "done": 0}
    for e in agent.history:
        state["best"] = e if state["best"] is None or e.reward > state["best"].reward else state["best"]

    def update(evaluation: Evaluation | None) -> None:
        if evaluation is None:
            bar.close()
            return
        state["done"] += 1
        if state["best"] is None or evaluation.reward > state["best"].reward:
            state["best"] = evaluation
        seconds = (time.perf_counter() - state["start"]) / state["done"]
        bar.set_postfix_str(f"{plan.bar_text(state['best'])}, {seconds:.1f} s/child", refresh=False)
        bar.update(1)

    return update


def first_child_note(plan: Plan, budget: int, done: int) -> Callable[[Evaluation], None]:
    """A callback that prints the first trained child's wall seconds beside the plan's estimate, once.

    The plan's figure came from a few timed steps of other children; the line adds the ETA at the
    pace of this real one.
    """
    start = time.perf_counter()
    state = {"said": plan.calibration is None}

    def note(evaluation: Evaluation) -> None:
        if state["said"] or evaluation.info.get("cached"):
            return
        state["said"] = True
        wall = time.perf_counter() - start
        seconds = evaluation.info.get("train_seconds")
        seconds = seconds if isinstance(seconds, float) and seconds > 0 else wall
        assert plan.calibration is not None
        mean = plan.calibration.per_child(plan.precision)[1]
        left = budget - done - 1
        eta = seconds * left / plan.workers
        line = (
            f"  first child trained in {duration(seconds)} (the plan's mean: {duration(mean)}), "
            f"{duration(wall)} after the search started; ETA at its pace: {duration(eta)} for {left} children"
        )
        from tqdm.auto import tqdm

        tqdm.write(line)

    return note
