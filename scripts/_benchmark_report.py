"""The outputs of ``nas-benchmark``: runs.csv, the NB201-style summary table and the curves plot.

Split from :mod:`scripts.benchmark` (which runs the policies) so that each file reads on its own.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scripts._benchmark_config import BenchmarkConfig

_T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145)
"""Student t quantiles (0.975) for 1..14 degrees of freedom; 1.96 beyond (normal approximation is
within 5% from 15 on)."""


NB201_PUBLISHED: dict[str, dict[str, tuple[float, float]]] = {
    "cifar10_test_acc_200ep": {
        "random": (93.70, 0.36),
        "reinforce_nb201": (93.85, 0.37),
        "evolution": (93.92, 0.30),
    },
    "cifar100_test_acc_200ep": {
        "random": (71.04, 1.07),
        "reinforce_nb201": (71.71, 1.09),
        "evolution": (71.84, 0.99),
    },
    "imagenet16_120_test_acc_200ep": {
        "random": (44.57, 1.25),
        "reinforce_nb201": (45.24, 1.18),
        "evolution": (45.54, 1.03),
    },
}
"""NAS-Bench-201's Table 5 (Dong & Yang, ICLR 2020): test accuracy (%) mean ± std over 500 runs of
RS, REINFORCE and REA searching on 12-epoch validation accuracy with a 12,000 s simulated budget
(about 100 architectures on CIFAR-10), per report column; keyed by this package's policy names."""


def published_figures(
    reward_metric: str | None, report_metric: str | None
) -> dict[str, tuple[float, float]] | None:
    """NB201's figures (see :data:`NB201_PUBLISHED`) when the run is set up as NB201's, else None.

    NB201 searched on the 12-epoch validation column and reported the 200-epoch test column of
    the same dataset; any other pair of columns is a different experiment.
    """
    figures = NB201_PUBLISHED.get(report_metric or "")
    if figures is None or reward_metric != (report_metric or "").replace(
        "_test_acc_200ep", "_valid_acc_12ep"
    ):
        return None
    return figures


def write_runs(path: Path, runs: Sequence[list[dict[str, Any]]]) -> None:
    """Write every row of every run, in job order (policy as given, then seed, then index)."""
    rows = [row for run in runs for row in run]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["policy"])
        writer.writeheader()
        writer.writerows(rows)


def best_at(run: list[dict[str, Any]], budget: float, key: str, by_time: bool) -> float:
    """The best-so-far value of ``key`` after ``budget`` architectures (or simulated seconds)."""
    if by_time:
        within = [row for row in run if row["total_train_seconds"] <= budget]
        return float(within[-1][key]) if within else math.nan
    return float(run[min(int(budget), len(run)) - 1][key]) if run else math.nan


def curve(run: list[dict[str, Any]], xs: np.ndarray, key: str, by_time: bool) -> np.ndarray:
    """:func:`best_at` at every budget of ``xs`` (ascending), vectorised."""
    values = np.array([float(row[key]) for row in run] + [math.nan])  # NaN: no evaluation yet
    if by_time:
        totals = np.array([row["total_train_seconds"] for row in run])
        index = np.searchsorted(totals, xs, side="right") - 1
    else:
        index = np.minimum(xs.astype(int), len(run)) - 1
    return values[np.where(index >= 0, index, len(run))]


def _scale(key: str) -> float:
    return 100.0 if key.endswith("accuracy") else 1.0


def mean_std(values: Sequence[float], digits: int = 2) -> str:
    """``"mean ± std"`` over the finite values (sample std, n - 1), ``"-"`` when there are none."""
    finite = np.asarray([v for v in values if math.isfinite(v)])
    if not len(finite):
        return "-"
    std = float(finite.std(ddof=1)) if len(finite) > 1 else 0.0
    return f"{finite.mean():.{digits}f} ± {std:.{digits}f}"


def summary_markdown(
    config: BenchmarkConfig,
    runs: dict[str, list[list[dict[str, Any]]]],
    wall: dict[str, list[float]],
    optimum: tuple[str, float, float] | None,
    published: dict[str, tuple[float, float]] | None = None,
    skipped: dict[str, str] | None = None,
    reward_is_accuracy: bool = False,
) -> str:
    """The summary table: per policy, the report metric of the best-reward architecture at each budget.

    With ``published`` (figures of :data:`NB201_PUBLISHED`), a last column gives NB201's own
    figure for the policies it ran ("-" for the others). ``skipped`` policies (``--policies all``:
    those that cannot run with their defaults) are listed with the reason. Accuracies, the search
    reward included when it is one (``reward_is_accuracy``), are in percent throughout.
    """
    key, by_time = config.report_key, config.time_budget is not None
    scale = _scale(key)
    unit = "s" if by_time else ""
    points = config.checkpoints()
    pct = " (%)" if scale == 100 else ""
    reward_scale = 100.0 if reward_is_accuracy else 1.0
    reward_name = "best search reward" + (" (%)" if reward_is_accuracy else "")
    header = ["policy", *[f"{key}{pct} @ {p:g}{unit}" for p in points], reward_name, "distinct archs", "runs"]
    header.append("wall s/run")
    if published is not None:
        header.append("NB201 published")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for policy, policy_runs in runs.items():
        cells = [
            mean_std([best_at(r, p, f"best_{key}", by_time) * scale for r in policy_runs]) for p in points
        ]
        finals = [r[-1]["best_reward"] * reward_scale if r else math.nan for r in policy_runs]
        final = mean_std(finals, digits=2 if reward_is_accuracy else 4)
        distinct = mean_std([len({row["arch"] for row in r}) for r in policy_runs], digits=1)
        cells += [final, distinct, str(len(policy_runs)), f"{np.mean(wall[policy]):.2f}"]
        if published is not None:
            figure = published.get(policy)
            cells.append("-" if figure is None else f"{figure[0]:.2f} ± {figure[1]:.2f}")
        lines.append("| " + " | ".join([policy, *cells]) + " |")
    budget = (
        f"{config.time_budget:g} simulated training seconds" if by_time else f"{config.budget} architectures"
    )
    text = [
        f"# Benchmark on {config.env}",
        "",
        f"Env arguments: `{json.dumps(config.env_kwargs, sort_keys=True)}`; {config.seeds} seeds per policy "
        f"(0..{config.seeds - 1}); budget: {budget} per run. Each cell: mean ± std over seeds of "
        f"`{key}` of the architecture with the best search reward found within that budget. "
        f"`{reward_name}`: the best search reward at the end. `distinct archs`: architectures "
        "evaluated once or more (a repeat is answered from the results store but counts against the budget).",
        "",
        *lines,
    ]
    if optimum is not None:
        arch, reward, report = optimum
        text += [
            "",
            f"Best possible: the cell with the best search reward, `{arch}`, has search reward "
            f"{reward * reward_scale:.2f}{' (%)' if reward_is_accuracy else ''} and "
            f"{key} {report * scale:.2f}{pct}.",
        ]
    for policy, reason in (skipped or {}).items():
        text += [
            "",
            f"Skipped `{policy}`: it cannot run with its defaults ({reason}); give its settings "
            f"with `--agent-kwargs {policy}.KEY=VALUE` and name it in `--policies`.",
        ]
    text += _behaviour_notes(runs)
    if published is not None:
        text += [
            "",
            "NB201 published: Dong & Yang (ICLR 2020), Table 5, mean ± std over 500 runs searching on "
            "12-epoch validation accuracy for 12,000 simulated seconds (about 100 architectures on "
            "CIFAR-10); compare with the column at the same budget.",
        ]
    return "\n".join(text) + "\n"


WHY: dict[str, str] = {
    "ppo": "PPO and MaskablePPO update their policy every n_steps=2048 env steps (SB3's default); a run "
    "shorter than that never updates and samples from its initial network, which is the same for both "
    "at the same seed, and where every action is valid (NB201) masking changes nothing",
    "dqn": "DQN's epsilon-greedy exploration (SB3's defaults) decays to 5% over the first 10% of its "
    "steps, after which it mostly repeats its greedy architecture; repeats cost no training but use "
    "the budget",
}
"""Why a policy behaves as :func:`_behaviour_notes` found it (SB3's defaults, see docs/agents.md)."""


def _behaviour_notes(runs: dict[str, list[list[dict[str, Any]]]]) -> list[str]:
    """Notes on what the rows show: policies that evaluated the same architectures, and many repeats."""
    notes: list[str] = []
    sequences = {p: [[row["arch"] for row in r] for r in rs] for p, rs in runs.items()}
    names = list(sequences)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if sequences[a] and sequences[a] == sequences[b]:
                why = WHY.get(a.removesuffix("+sh")) or WHY.get(b.removesuffix("+sh"))
                reason = f": {why}" if why and "ppo" in a + b else ""
                notes.append(f"`{a}` and `{b}` evaluated the same architectures in every seed{reason}.")
    for policy, seqs in sequences.items():
        total = sum(len(s) for s in seqs)
        distinct = sum(len(set(s)) for s in seqs)
        if total and distinct < 0.8 * total:
            base = policy.removesuffix("+sh")
            why = f": {WHY[base]}" if base == "dqn" else ""
            notes.append(
                f"`{policy}` evaluated {distinct / total:.0%} distinct architectures per run on average{why}."
            )
    return [line for note in notes for line in ("", note)]


def _band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over runs (rows) and the half-width of its 95% confidence interval (Student t).

    Points where some run has no value yet (time budgets: before its first evaluation) are NaN.
    """
    n = len(values)
    mean = values.mean(axis=0)
    if n < 2:
        return mean, np.zeros_like(mean)
    t = _T_975[n - 2] if n - 1 <= len(_T_975) else 1.96
    return mean, t * values.std(axis=0, ddof=1) / np.sqrt(n)


PUBLISHED_AT = {"architectures": 100.0, "seconds": 12_000.0}
"""Where NB201's published figures sit on the x axis: 12,000 simulated seconds, about 100 cells."""


def plot_curves(
    path: Path,
    config: BenchmarkConfig,
    runs: dict[str, list[list[dict[str, Any]]]],
    optimum: tuple[str, float, float] | None,
    published: dict[str, tuple[float, float]] | None = None,
) -> None:
    """Best-so-far report metric against the budget: mean and 95% band per policy (matplotlib, Agg).

    The legend sits outside the axes; the y range fits the mean curves after their first tenth
    (the first few random picks would squash the rest; bands may be cut); NB201's published
    figures (mean ± std) are drawn at their budget in the colour of the matching policy.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    key, by_time = config.report_key, config.time_budget is not None
    scale = _scale(key)
    limit = config.time_budget if config.time_budget is not None else config.max_evaluations
    xs = np.linspace(0, limit, 200)[1:] if by_time else np.arange(1, config.max_evaluations + 1)
    fig = Figure(figsize=(10, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    shown: list[float] = []
    colours: dict[str, Any] = {}
    for policy, policy_runs in runs.items():
        values = np.array([curve(r, xs, f"best_{key}", by_time) * scale for r in policy_runs])
        mean, half = _band(values)
        (line,) = ax.plot(xs, mean, label=f"{policy} ({len(policy_runs)} seeds)")
        colours[policy] = line.get_color()
        ax.fill_between(xs, mean - half, mean + half, alpha=0.1, color=line.get_color())
        tail = slice(len(xs) // 10, None)
        shown += [float(np.nanmin(mean[tail])), float(np.nanmax(mean[tail]))]
    if optimum is not None:
        ax.axhline(
            optimum[2] * scale,
            color="black",
            linestyle="--",
            linewidth=1,
            label="best-reward cell (perfect search)",
        )
        shown.append(optimum[2] * scale)
    at = PUBLISHED_AT["seconds" if by_time else "architectures"]
    for policy, (mean_pub, std_pub) in (published or {}).items():
        if policy in runs and at <= limit:
            ax.errorbar(
                [at], [mean_pub], yerr=[std_pub], fmt="s", capsize=4, color=colours[policy],
                label=f"{policy}: NB201 published {mean_pub:.2f} ± {std_pub:.2f}",
            )  # fmt: skip
            shown += [mean_pub - std_pub, mean_pub + std_pub]
    finite = [v for v in shown if math.isfinite(v)]
    if finite:
        low, high = min(finite), max(finite)
        pad = max(0.05 * (high - low), 0.05)
        ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("simulated training seconds" if by_time else "architectures evaluated")
    ax.set_ylabel(f"{key} of best-reward arch so far" + (" (%)" if scale == 100 else ""))
    ax.set_title(f"{config.env}: mean and 95% confidence band over seeds")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
