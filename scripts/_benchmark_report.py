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
) -> str:
    """The summary table: per policy, the report metric of the best-reward architecture at each budget.

    With ``published`` (figures of :data:`NB201_PUBLISHED`), a last column gives NB201's own
    figure for the policies it ran ("-" for the others). ``skipped`` policies (``--policies all``:
    those that cannot run with their defaults) are listed with the reason.
    """
    key, by_time = config.report_key, config.time_budget is not None
    scale = _scale(key)
    unit = "s" if by_time else ""
    points = config.checkpoints()
    pct = " (%)" if scale == 100 else ""
    header = ["policy", *[f"{key}{pct} @ {p:g}{unit}" for p in points], "best reward", "runs", "wall s/run"]
    if published is not None:
        header.append("NB201 published")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for policy, policy_runs in runs.items():
        cells = [
            mean_std([best_at(r, p, f"best_{key}", by_time) * scale for r in policy_runs]) for p in points
        ]
        final = mean_std([r[-1]["best_reward"] if r else math.nan for r in policy_runs], digits=4)
        cells += [final, str(len(policy_runs)), f"{np.mean(wall[policy]):.2f}"]
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
        "`best reward`: the best search reward at the end.",
        "",
        *lines,
    ]
    if optimum is not None:
        arch, reward, report = optimum
        text += [
            "",
            f"Best possible: the cell with the best search reward, `{arch}`, has reward {reward * 100:.2f} "
            f"and {key} {report * scale:.2f}.",
        ]
    for policy, reason in (skipped or {}).items():
        text += [
            "",
            f"Skipped `{policy}`: it cannot run with its defaults ({reason}); give its settings "
            f"with `--agent-kwargs {policy}.KEY=VALUE` and name it in `--policies`.",
        ]
    if published is not None:
        text += [
            "",
            "NB201 published: Dong & Yang (ICLR 2020), Table 5, mean ± std over 500 runs searching on "
            "12-epoch validation accuracy for 12,000 simulated seconds (about 100 architectures on "
            "CIFAR-10); compare with the column at the same budget.",
        ]
    return "\n".join(text) + "\n"


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


def plot_curves(
    path: Path,
    config: BenchmarkConfig,
    runs: dict[str, list[list[dict[str, Any]]]],
    optimum: tuple[str, float, float] | None,
) -> None:
    """Best-so-far report metric against the budget: mean and 95% band per policy (matplotlib, Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    key, by_time = config.report_key, config.time_budget is not None
    scale = _scale(key)
    limit = config.time_budget if config.time_budget is not None else config.max_evaluations
    xs = np.linspace(0, limit, 200)[1:] if by_time else np.arange(1, config.max_evaluations + 1)
    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for policy, policy_runs in runs.items():
        values = np.array([curve(r, xs, f"best_{key}", by_time) * scale for r in policy_runs])
        mean, half = _band(values)
        ax.plot(xs, mean, label=f"{policy} ({len(policy_runs)} seeds)")
        ax.fill_between(xs, mean - half, mean + half, alpha=0.2)
    if optimum is not None:
        ax.axhline(
            optimum[2] * scale,
            color="black",
            linestyle="--",
            linewidth=1,
            label="best-reward cell (perfect search)",
        )
    ax.set_xlabel("simulated training seconds" if by_time else "architectures evaluated")
    ax.set_ylabel(f"{key} of best-reward arch so far" + (" (%)" if scale == 100 else ""))
    ax.set_title(f"{config.env}: mean and 95% confidence band over seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
