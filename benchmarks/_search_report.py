"""How ``bench_search.py`` judges the architectures its runs return, and the figures it prints.

- **NAS-Bench-201** (:func:`judge_by_table`): the returned cell's 200-epoch test accuracy in the real
  table and its rank among the 15,625 cells, printed beside NB201's published rows.
- **The CNN space** (:func:`judge_by_retraining`), where no table exists: each returned architecture
  is retrained at a long reference recipe (``--reference``, by default bench_fidelity's 10k images x
  10 epochs at 32x32) with ``--reference-seeds`` training seeds, each kept in the shared results
  store under the label ``reference=SPEC:sK`` (exported and replayed like every evaluation). A
  policy is compared with random search seed by seed (the same seed, the same clock).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from _fidelity_runs import Trainer

from nas_env.evaluators.base import Evaluator
from nas_env.evaluators.replay import ReplayEvaluator
from nas_env.evaluators.tabular import load_nb201_table
from nas_env.search_spaces.cnn import CnnArchitecture
from nas_env.search_spaces.nb201 import NUM_CELLS, NB201Architecture
from nas_env.store import ResultsStore
from nas_env.training.calibration import cpu_model
from scripts._timed_search import RunResult

REPORT_COLUMN = "cifar10_test_acc_200ep"
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
BASELINE = "random"
"""The policy every other one is compared with on the CNN space, seed by seed."""

Figures = dict[str, float]
"""One run's judged figures: ``test_acc_200ep`` and ``rank`` (NB201), or ``reference_acc`` (the mean
over training seeds, %) and ``reference_acc_sK`` per seed (CNN); NaN when the run returned nothing."""


def judge_by_table(results: Sequence[RunResult], table: str) -> list[Figures]:
    """Each returned cell's 200-epoch test accuracy (%) in the table and its rank (1 = best) of 15,625."""
    column = load_nb201_table(table).column(REPORT_COLUMN)
    out: list[Figures] = []
    for result in results:
        if result.arch is None:
            out.append({"test_acc_200ep": float("nan"), "rank": 0})
            continue
        accuracy = float(column[NB201Architecture.from_str(result.arch).index])
        out.append({"test_acc_200ep": accuracy, "rank": 1 + int(np.sum(column > accuracy))})
    return out


def reference_label(reference: str, seed: int) -> str:
    """The fidelity label of a reference retraining's rows in the store's export: ``reference=SPEC:sK``."""
    return f"reference={reference}:s{seed}"


def judge_by_retraining(
    results: Sequence[RunResult],
    evaluator: Evaluator,
    reference: str,
    seeds: int,
    store_path: str,
    workers: int,
    replay: str | None = None,
) -> list[Figures]:
    """Retrain every returned architecture at ``evaluator``'s recipe with training seeds 0..seeds-1.

    Each (architecture, seed) trains once into the store at ``store_path`` (key: the evaluator's
    fingerprint and ``:sK``), ``workers`` at a time, so a killed benchmark loses no retraining. With
    ``replay`` the accuracies come from that CSV's ``reference=SPEC:sK`` rows instead (no training).

    Raises:
        DatasetError: With ``replay``, a returned architecture without its reference row.
    """
    archs = sorted({r.arch for r in results if r.arch is not None})
    parsed = [CnnArchitecture.from_str(a) for a in archs]
    accuracy: dict[tuple[str, int], float] = {}
    store = None if replay is not None else ResultsStore(store_path)
    for seed in range(seeds):
        label = reference_label(reference, seed)
        if store is None:
            answer = ReplayEvaluator(str(replay), label)
            values = [100 * answer.evaluate(arch, seed).metrics["val_accuracy"] for arch in parsed]
        else:
            values, _ = Trainer(store, workers).accuracies(evaluator, parsed, seed, label)
        accuracy.update({(a, seed): float(v) for a, v in zip(archs, values, strict=True)})
    if store is not None:
        store.close()
    out: list[Figures] = []
    for result in results:
        per_seed = [accuracy[(result.arch, s)] if result.arch else float("nan") for s in range(seeds)]
        figures = {"reference_acc": float(np.mean(per_seed))}
        out.append(figures | {f"reference_acc_s{s}": v for s, v in enumerate(per_seed)})
    return out


def reference_labels(evaluator: Evaluator, reference: str, seeds: int) -> dict[str, tuple[str, str]]:
    """Store key -> (CSV fidelity label, metric) of the reference retrainings, for export and import."""
    return {
        f"{evaluator.fingerprint}:s{s}": (reference_label(reference, s), "val_accuracy") for s in range(seeds)
    }


def mean_std(values: Sequence[float], digits: int) -> str:
    """``mean ± std`` (sample std) of the finite values, one value alone, or ``-`` for none."""
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def summary(
    config: Any,
    results: Sequence[RunResult],
    figures: list[Figures],
    judged_by: str,
    command: str,
) -> str:
    """The side-by-side table per policy, what it is compared with, and every run with its seed.

    Args:
        config: The benchmark's settings (``BenchSearchConfig``).
        judged_by: The table's path (NB201) or the reference recipe's description (CNN).
    """
    table = config.env == "NAS-Bench-201-v0"
    source = f"replayed from {config.replay}" if config.replay else f"store {config.store_path}"
    ladder = f" promoted to {', '.join(config.rungs)}" if config.rungs else ""
    judged = (
        f"Judged by {REPORT_COLUMN} of the returned cell in {judged_by}; rank 1 = best of {NUM_CELLS:,}."
        if table
        else f"Judged by retraining each returned architecture at {judged_by}, "
        f"training seeds 0..{config.reference_seeds - 1}: validation accuracy (%), mean over those seeds."
    )
    lines = [
        f"# End to end: {config.env} trained at {config.fidelity}{ladder}, {config.time_budget:g} s per run",
        "",
        f"Clock: charged measured seconds / {config.workers} one-thread workers; {source}. "
        f"Seeds {config.first_seed}..{config.first_seed + config.seeds - 1}.",
        judged,
        f"Command: `{command}`",
        f"CPU: {cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end.",
        "",
    ]
    main = "test acc. (%) | rank" if table else f"reference acc. (%) | vs {BASELINE}, same seed | wins"
    lines += [f"| policy | {main} | evaluations | clock (min) | runs |", "|---|---|---|---|---|---|"]
    if not table:
        lines[-1] += "---|"
    by_seed = {(r.policy, r.seed): f for r, f in zip(results, figures, strict=True) if r.arch}
    for policy in config.policy_list:
        mine = [(r, f) for r, f in zip(results, figures, strict=True) if r.policy == policy and r.arch]
        evals, clock = [float(r.evaluations) for r, _ in mine], [r.clock_s / 60 for r, _ in mine]
        if table:
            ranks = [f["rank"] for _, f in mine if f["rank"]]
            cells = f"{mean_std([f['test_acc_200ep'] for _, f in mine], 2)} | {mean_std(ranks, 0)}"
        else:
            paired = [
                f["reference_acc"] - by_seed[(BASELINE, r.seed)]["reference_acc"]
                for r, f in mine
                if (BASELINE, r.seed) in by_seed and policy != BASELINE
            ]
            wins = f"{sum(d > 0 for d in paired)} of {len(paired)}" if paired else "-"
            cells = f"{mean_std([f['reference_acc'] for _, f in mine], 2)} | {mean_std(paired, 2)} | {wins}"
        name = f"{policy}+sh" if config.rungs else policy
        runs = f"{len(mine)} of {config.seeds}"
        lines.append(f"| {name} | {cells} | {mean_std(evals, 1)} | {mean_std(clock, 1)} | {runs} |")
    lines.append("")
    if table:
        lines += [
            "Published, not measured here: CIFAR-10 test accuracy (%) of the cell found "
            "(NB201, Dong & Yang, ICLR 2020, Table 5; NASWOT, Mellor et al., ICML 2021).",
            "",
            "| method (published) | test acc. (%) | budget |",
            "|---|---|---|",
            *(f"| {name} | {acc} | {setting} |" for name, acc, setting in PUBLISHED),
            "",
        ]
    elif config.reference_seeds > 1:
        spread = [
            float(np.std([f[f"reference_acc_s{s}"] for s in range(config.reference_seeds)], ddof=1))
            for f in by_seed.values()
        ]
        lines += [
            f"Training-seed noise of the reference: the std of one architecture's accuracy over its "
            f"{config.reference_seeds} seeds, {mean_std(spread, 2)} points over the returned architectures.",
            "",
        ]
    judged_cols = "test acc. (%) | rank" if table else "reference acc. (%) per seed"
    lines += [
        f"| policy | seed | returned architecture | search reward | {judged_cols} | evaluations "
        "| trained now | clock s | wall s |",
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if table else ""),
    ]
    for r, f in zip(results, figures, strict=True):
        if table:
            judged_row = f"{f['test_acc_200ep']:.2f} | {f['rank']:.0f}"
        else:
            judged_row = " / ".join(f"{f[f'reference_acc_s{s}']:.2f}" for s in range(config.reference_seeds))
        lines.append(
            f"| {r.policy} | {r.seed} | `{r.arch}` | {r.reward:.4f} | {judged_row} | "
            f"{r.evaluations} | {r.trained} | {r.clock_s:.1f} | {r.wall_s:.0f} |"
        )
    return "\n".join(lines) + "\n"


def write_runs(path: Path, results: Sequence[RunResult], figures: list[Figures]) -> None:
    """One row per run: what it returned, its judged figures, its cost."""
    rows = [asdict(r) | f for r, f in zip(results, figures, strict=True)]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
