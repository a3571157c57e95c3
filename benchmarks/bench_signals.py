"""How well each signal of a search's measured evaluations ranks the NAS-Bench-201 cells it met.

``bench_fidelity`` measures a reward on a seeded sample it draws; a search meets other cells: the
random ones it starts from, then the ones its policy (and a zero-cost screen) favours. This reads
the measured-evaluations CSVs that ``bench_search --export`` writes (``nas_env/evaluators/replay.py``
gives the format), and prints, for every signal in them, the Kendall τ against the NB201 table
(``--truth``, default the 200-epoch test accuracy) over the cells that signal scored:

- each trained fidelity (``proxy``, ``deep``...: the validation accuracy the search was rewarded with;
  a failed child ranks below every trained one) and each zero-cost score (``zero_cost:NAME`` rows);
- the table's own 12-epoch validation accuracy on the same cells, for reference (NB201's cheap signal);
- for each trained fidelity and zero-cost score, their rank average over the cells that have both.

Beside τ over all the cells, τ over their better half (by the truth): the cells a search must
order to return a good one. Nothing is trained; it runs in seconds.

Run: ``NAS_ENV_DATA=../shared/data python benchmarks/bench_signals.py benchmarks/measured/*.csv``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from nas_env.errors import DatasetError, InvalidArchitectureError
from nas_env.evaluators.replay import ZERO_COST_PREFIX, read_measured_csv
from nas_env.evaluators.tabular import find_nb201_table, load_nb201_table
from nas_env.ranking import kendall_tau, rank_average
from nas_env.search_spaces.nb201 import NB201Architecture

REFERENCE_COLUMN = "cifar10_valid_acc_12ep"
"""The table's own cheap signal, printed on the same cells as each measured one."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line settings (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("csv", nargs="+", help="measured-evaluations CSVs (bench_search --export)")
    p.add_argument("--truth", default="cifar10_test_acc_200ep", help="the table column to rank against")
    p.add_argument("--data-dir", default=None, help="data root holding nb201/ (default: $NAS_ENV_DATA)")
    return p.parse_args(argv)


def read_signals(paths: list[str]) -> dict[str, dict[int, float]]:
    """Per signal (fidelity or ``zero_cost:NAME``), each cell's table index and score; the first file
    holding a cell wins (a store answers with its first evaluation too).

    Raises:
        DatasetError: A file is unreadable or malformed, or names a cell that is not NB201's.
    """
    signals: dict[str, dict[int, float]] = {}
    for path in paths:
        for row in read_measured_csv(path):
            try:
                index = NB201Architecture.from_str(row.arch).index
            except InvalidArchitectureError as exc:
                raise DatasetError(f"{path}: {exc} (this benchmark ranks NAS-Bench-201 exports)") from exc
            score = -np.inf if row.score is None else row.score
            signals.setdefault(row.fidelity, {}).setdefault(index, score)
    return signals


def taus(scores: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """τ over all cells and over those with truth at or above its median."""
    better = truth >= np.median(truth)
    return kendall_tau(scores, truth), kendall_tau(scores[better], truth[better])


def report(signals: dict[str, dict[int, float]], truth: np.ndarray, reference: np.ndarray) -> list[str]:
    """The printed table: one row per signal, its 12-epoch reference and the rank averages."""
    lines = [
        "| signal | cells | τ all | τ better half | 12-epoch column on the same cells: τ all | better half |",
        "|---|---|---|---|---|---|",
    ]

    def row(name: str, cells: list[int], scores: np.ndarray) -> None:
        index = np.array(cells)
        all_tau, half_tau = taus(scores, truth[index])
        ref_all, ref_half = taus(reference[index], truth[index])
        lines.append(
            f"| {name} | {len(cells)} | {all_tau:+.2f} | {half_tau:+.2f} | {ref_all:+.2f} | {ref_half:+.2f} |"
        )

    trained = sorted(s for s in signals if not s.startswith(ZERO_COST_PREFIX))
    zero_cost = sorted(s for s in signals if s.startswith(ZERO_COST_PREFIX))
    for name in trained + zero_cost:
        cells = sorted(signals[name])
        row(name, cells, np.array([signals[name][c] for c in cells]))
    for fidelity in trained:
        for score in zero_cost:
            cells = sorted(set(signals[fidelity]) & set(signals[score]))
            if len(cells) >= 2:
                a = np.array([signals[fidelity][c] for c in cells])
                b = np.array([signals[score][c] for c in cells])
                name = f"rank average {fidelity} + {score.removeprefix(ZERO_COST_PREFIX)}"
                row(name, cells, rank_average([a, b]))
    return lines


def main(argv: list[str] | None = None) -> int:
    """Print the τ table of the CSVs; 2 with one line on stderr for bad input."""
    args = parse_args(argv)
    try:
        table = load_nb201_table(find_nb201_table(args.data_dir))
        truth, reference = table.column(args.truth), table.column(REFERENCE_COLUMN)
        signals = read_signals(args.csv)
    except DatasetError as exc:
        print(f"bench_signals: error: {exc}", file=sys.stderr)
        return 2
    print(f"Kendall τ against the table's {args.truth}, over the cells each signal scored in")
    for path in args.csv:
        print(f"  {Path(path)}")
    print()
    print("\n".join(report(signals, truth, reference)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
