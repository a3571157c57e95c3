"""What a search that trains only a few children can return on NAS-Bench-201, simulated on the table.

Where a trained child costs minutes (a ``proxy`` child takes several on a CPU without AVX-512), a
wall-clock budget buys a handful of children, and the cell a search returns depends on how it
chooses them. This simulates, for each number of trained children N and each screen size S, the
zero-cost screened random search (``agents.screen``'s ``screened_random``): every trained child is
the best-scored of S random candidates not trained yet (S = 1: plain random search of N distinct
cells); the search returns the child with the best *search signal*, a table column standing in
for the trained reward (``--signal``, default NB201's 12-epoch validation accuracy, which ranks
about as well as the ``proxy`` preset, docs/fidelity.md). Printed: the mean ± std over
``--trials`` of the returned cell's 200-epoch test accuracy, and the zero-cost score's Kendall τ
on the sample.

Candidates come from a seeded sample of ``--sample`` cells whose zero-cost scores are computed once
(cached in ``--store``, the same store key as the screens' ``screen_cache``). No child is trained.

Run: ``NAS_ENV_DATA=../shared/data python benchmarks/bench_budget.py [--budgets 5,7,10,25,50]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from agents.screen import ZeroCostScreen
from nas_env.evaluators.tabular import find_nb201_table, load_nb201_table
from nas_env.ranking import kendall_tau
from nas_env.search_spaces.nb201 import NUM_CELLS, NB201Architecture, NB201SearchSpace

REPORT_COLUMN = "cifar10_test_acc_200ep"


def sample_scores(size: int, score: str, store: str | None) -> tuple[np.ndarray, np.ndarray, float]:
    """Table indices of a seeded sample of cells, their zero-cost scores, and seconds per new score."""
    cells = np.random.default_rng(0).choice(NUM_CELLS, size, replace=False)
    space = NB201SearchSpace()
    screen = ZeroCostScreen(space, score, store)
    start = time.perf_counter()
    scores = np.array([screen.score(space.encode(NB201Architecture.from_index(int(c)))) for c in cells])
    per_cell = (time.perf_counter() - start) / max(screen.computed, 1)
    return cells, scores, per_cell if screen.computed else 0.0


def simulate(
    budget: int, screen: int, scores: np.ndarray, signal: np.ndarray, truth: np.ndarray, trials: int
) -> np.ndarray:
    """The returned cell's true accuracy in each trial of a screened random search of ``budget`` children."""
    rng = np.random.default_rng(1)
    returned = np.empty(trials)
    for t in range(trials):
        chosen: list[int] = []
        for _ in range(budget):
            untrained = np.setdiff1d(np.arange(len(scores)), chosen)  # N distinct children are trained
            candidates = rng.choice(untrained, min(screen, len(untrained)), replace=False)
            chosen.append(int(max(candidates, key=lambda c: scores[c])))
        picks = np.array(chosen)
        returned[t] = truth[picks[np.argmax(signal[picks])]]
    return returned


def main(argv: list[str] | None = None) -> None:
    """Print the simulated returned accuracy per budget and screen size."""
    parser = argparse.ArgumentParser(
        prog="bench_budget", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budgets", default="5,7,10,25,50", help="trained children per search")
    parser.add_argument("--screens", default="1,20,100", help="zero-cost candidates per trained child")
    parser.add_argument("--score", default="live_params", help="zero-cost score of the screen")
    parser.add_argument("--signal", default="cifar10_valid_acc_12ep", help="table column: the search signal")
    parser.add_argument("--sample", type=int, default=2000, help="cells the candidates come from (seed 0)")
    parser.add_argument("--trials", type=int, default=2000, help="simulated searches per setting")
    parser.add_argument("--table", default=None, help="NB201 table (default: found under $NAS_ENV_DATA)")
    parser.add_argument("--store", default="runs/zc_screen.sqlite", help="zero-cost score cache")
    args = parser.parse_args(argv)
    budgets = [int(b) for b in args.budgets.split(",")]
    screens = [int(s) for s in args.screens.split(",")]
    for flag, values in (("--budgets", budgets), ("--screens", screens)):
        if not values or min(values) < 1 or max(values) > args.sample:
            parser.error(f"{flag} {values}: each must be in [1, --sample {args.sample}]")
    table = load_nb201_table(args.table or find_nb201_table())
    cells, scores, per_cell = sample_scores(args.sample, args.score, args.store)
    truth, signal = table.column(REPORT_COLUMN)[cells], table.column(args.signal)[cells]
    print(
        f"{args.sample} cells (seed 0); {args.score}: Kendall tau {kendall_tau(scores, truth):.3f} against "
        f"{REPORT_COLUMN}, {per_cell:.3f} s per new score; signal {args.signal}; {args.trials} trials each\n"
    )
    print("| trained children | " + " | ".join(f"screen {s}" if s > 1 else "random" for s in screens) + " |")
    print("|---" * (len(screens) + 1) + "|")
    for budget in budgets:
        cells_text = []
        for screen in screens:
            found = simulate(budget, screen, scores, signal, truth, args.trials)
            cells_text.append(f"{found.mean():.2f} ± {found.std():.2f}")
        print(f"| {budget} | " + " | ".join(cells_text) + " |")
    print(f"\noptimum of the table: {table.column(REPORT_COLUMN).max():.2f}")


if __name__ == "__main__":
    main()
