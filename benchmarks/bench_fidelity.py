"""How well does a fidelity preset rank NB201 cells? Kendall tau against a table, and the seconds it took.

Trains a seeded sample of ``--cells`` cells of NAS-Bench-201 in the env's trained mode (NB201's
network, CIFAR-10, the package's trainer) at ``--preset``, then prints side by side:

- Kendall's tau-b between the preset's validation accuracies (the search signal) and the table's
  ``cifar10_test_acc_200ep``, and the same for the preset's test accuracies;
- for reference, the tau of the table's own ``cifar10_valid_acc_12ep`` (the default search
  signal of tabular mode) on the same cells;
- seconds per cell (mean, min, max) and in total.

Run: ``python benchmarks/bench_fidelity.py --table PATH --preset proxy --cells 20``. Without
``--table`` it uses the synthetic table of ``tests/nb201_table.py``, whose values are made up: the
tau it prints then only shows that the script runs. CIFAR-10 is read from ``$NAS_ENV_DATA``.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nas_env.envs.token_env import child_seed
from nas_env.evaluators.nb201_training import NB201TrainingEvaluator
from nas_env.evaluators.tabular import load_nb201_table
from nas_env.search_spaces.nb201 import NUM_CELLS, NB201Architecture
from nas_env.training.recipes import FIDELITIES

TARGET = "cifar10_test_acc_200ep"
SIGNAL = "cifar10_valid_acc_12ep"


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b (ties handled), O(n^2): fine for the tens of cells trained here."""
    i, j = np.triu_indices(len(x), 1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    denom = math.sqrt(float(np.count_nonzero(dx)) * float(np.count_nonzero(dy)))
    return float((dx * dy).sum() / denom) if denom else math.nan


def synthetic_table(folder: str) -> str:
    """Write the tests' synthetic table (full schema, formula values) into ``folder``."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from nb201_table import write_nb201_table

    return str(write_nb201_table(Path(folder) / "nb201_synthetic.csv"))


def main() -> None:
    """Train the sample, print one line per cell, then the figures side by side."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--table", default=None, help="NB201 table (default: the synthetic one)")
    parser.add_argument("--preset", default="proxy", choices=sorted(FIDELITIES))
    parser.add_argument("--cells", type=int, default=10, help="cells to train (a seeded uniform sample)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the sample and the training")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 root (default: $NAS_ENV_DATA)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.cells < 2:
        parser.error(f"--cells {args.cells}: Kendall's tau needs at least 2 cells")
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        table = load_nb201_table(args.table or synthetic_table(tmp))
    target, signal = table.column(TARGET), table.column(SIGNAL)
    indices = np.random.default_rng(args.seed).choice(NUM_CELLS, args.cells, replace=False)
    evaluator = NB201TrainingEvaluator(args.preset, data_dir=args.data_dir, device=args.device)
    evaluator.load_data()
    print(f"preset {args.preset} on {evaluator.device}, {args.cells} cells, table {table.path}")
    val, test, seconds = [], [], []
    start = time.perf_counter()
    for n, index in enumerate(indices, 1):
        arch = NB201Architecture.from_index(int(index))
        result = evaluator.evaluate(arch, child_seed(args.seed, arch.to_str()))
        if result.status != "ok":
            raise SystemExit(f"{arch.to_str()} failed: {result.error}")
        val.append(result.metrics["val_accuracy"] * 100)
        test.append(result.metrics["test_accuracy"] * 100)
        seconds.append(result.cost_s)
        print(
            f"[{n:3d}/{args.cells}] {arch.to_str():90s} val {val[-1]:5.1f}  test {test[-1]:5.1f}  "
            f"table {target[index]:5.1f}  {result.cost_s:6.1f} s"
        )
    total = time.perf_counter() - start
    tau_val = kendall_tau(np.array(val), target[indices])
    tau_test = kendall_tau(np.array(test), target[indices])
    tau_table = kendall_tau(signal[indices], target[indices])
    print()
    print(f"Kendall tau vs table {TARGET}, {args.cells} cells:")
    print(f"  preset {args.preset} validation accuracy: {tau_val:6.3f}")
    print(f"  preset {args.preset} test accuracy:       {tau_test:6.3f}")
    print(f"  table {SIGNAL} (reference):  {tau_table:6.3f}")
    mean_s, min_s, max_s = np.mean(seconds), np.min(seconds), np.max(seconds)
    print(f"seconds per cell: mean {mean_s:.1f}, min {min_s:.1f}, max {max_s:.1f}; total {total:.1f} s")


if __name__ == "__main__":
    main()
