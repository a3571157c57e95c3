"""A synthetic NAS-Bench-201 table with the full schema, built from a fixed formula.

Never real benchmark data: every accuracy is a made-up smooth function of the cell's operations
plus fixed pseudo-random noise, shaped like NB201's (chance level for cells whose output is not
connected to their input, convolutions best, 12-epoch accuracies a noisy, lower proxy of the
200-epoch ones). Used by the tests, and by the benchmarks when no real table is found
(NASLib's ``create_dummy_api`` plays the same part)::

    python -m nas_env.evaluators.nb201_synthetic /tmp/nb201_synthetic.csv
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from nas_env.evaluators.tabular import ACCURACY_COLUMNS, DATASETS, EPOCHS, SPLITS, TRAIN_SECONDS_COLUMNS
from nas_env.search_spaces.nb201 import EDGES, NUM_CELLS, NB201Architecture

QUALITY = {"none": 0.0, "skip_connect": 0.35, "nor_conv_1x1": 0.6, "nor_conv_3x3": 1.0, "avg_pool_3x3": 0.25}
EDGE_WEIGHT = (1.0, 0.8, 0.9, 1.2, 1.0, 1.1)
CHANCE = {"cifar10": 10.0, "cifar100": 1.0, "imagenet16_120": 100 / 120}
TOP = {"cifar10": 94.0, "cifar100": 73.0, "imagenet16_120": 46.0}
SECONDS_PER_EPOCH = {"cifar10": 12.0, "cifar100": 12.0, "imagenet16_120": 30.0}


def _connected(arch: NB201Architecture) -> bool:
    reach = {0}
    for (i, j), op in zip(EDGES, arch.ops, strict=True):
        if op != "none" and j in reach:
            reach.add(i)
    return 3 in reach


@lru_cache(maxsize=1)
def synthetic_columns() -> tuple[list[str], dict[str, np.ndarray]]:
    """Arch strings (cell-index order) and every schema column, from the fixed formula (do not mutate)."""
    archs = [NB201Architecture.from_index(i) for i in range(NUM_CELLS)]
    score = np.array([sum(w * QUALITY[op] for w, op in zip(EDGE_WEIGHT, a.ops, strict=True)) for a in archs])
    score = score / sum(EDGE_WEIGHT)
    residual = np.array([a.ops[3] == "skip_connect" for a in archs])  # input -> output shortcut
    score = np.clip(score + 0.08 * residual, 0, 1)
    connected = np.array([_connected(a) for a in archs])
    convs = np.array([sum(op.startswith("nor_conv") for op in a.ops) for a in archs])
    rng = np.random.default_rng(201)
    columns: dict[str, np.ndarray] = {}
    for dataset in DATASETS:
        low, high = CHANCE[dataset], TOP[dataset]
        final = low + (high - low) * (0.35 + 0.6 * score) + rng.normal(0, 0.6, NUM_CELLS)
        for split in SPLITS:
            acc200 = final + rng.normal(0, 0.25, NUM_CELLS)
            acc12 = 0.8 * acc200 - 6 * (1 - score) + rng.normal(0, 1.5, NUM_CELLS)
            for epochs, acc in zip(EPOCHS, (acc12, acc200), strict=True):
                acc = np.where(connected, acc, low + rng.uniform(0, 0.3, NUM_CELLS))
                columns[f"{dataset}_{split}_acc_{epochs}ep"] = np.clip(acc, low / 2, 99.9)
        for epochs in EPOCHS:
            columns[f"{dataset}_train_seconds_{epochs}ep"] = SECONDS_PER_EPOCH[dataset] * epochs * (1 + convs)
    assert set(columns) == {*ACCURACY_COLUMNS, *TRAIN_SECONDS_COLUMNS}
    return [a.to_str() for a in archs], columns


@lru_cache(maxsize=2)
def _table_lines(extra_column: bool) -> tuple[str, ...]:
    archs, columns = synthetic_columns()
    names = list(columns)
    header = ["arch_str", *names] + (["comment"] if extra_column else [])
    order = np.random.default_rng(0).permutation(NUM_CELLS)
    lines = [",".join(header)]
    for i in order:
        values = [f"{columns[n][i]:.4f}" for n in names] + (["ignored"] if extra_column else [])
        lines.append(",".join([archs[i], *values]))
    return tuple(lines)


def table_lines(extra_column: bool = True) -> list[str]:
    """The CSV lines (header first) of the synthetic table; rows are in a shuffled, fixed order."""
    return list(_table_lines(extra_column))


def write_nb201_table(path: str | Path, lines: list[str] | None = None) -> Path:
    """Write ``lines`` (default: the synthetic table) as a CSV file and return its path."""
    path = Path(path)
    path.write_text("\n".join(table_lines() if lines is None else lines) + "\n")
    return path


def write_synthetic_table(folder: str | Path) -> str:
    """Write the synthetic table as ``nb201_synthetic.csv`` in ``folder``; return its path."""
    return str(write_nb201_table(Path(folder) / "nb201_synthetic.csv"))


def best_cell(metric: str) -> tuple[str, float]:
    """The cell with the highest ``metric`` and that value (percent)."""
    archs, columns = synthetic_columns()
    i = int(np.argmax(columns[metric]))
    return archs[i], float(np.round(columns[metric][i], 4))


if __name__ == "__main__":
    out = write_nb201_table(sys.argv[1] if len(sys.argv) > 1 else "nb201_synthetic.csv")
    print(f"wrote {out}: {NUM_CELLS} cells of the synthetic NB201 table (not real benchmark data)")
