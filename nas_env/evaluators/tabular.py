"""Score NAS-Bench-201 cells by looking them up in a table instead of training them.

The table is a CSV file the user supplies, one row per cell of the 15,625:

- ``arch_str``: the cell in NB201's string form (see :mod:`nas_env.search_spaces.nb201`);
- accuracy columns in percent named ``{dataset}_{split}_acc_{epochs}ep``, with ``dataset`` one of
  ``cifar10``, ``cifar100``, ``imagenet16_120``, ``split`` one of ``valid``, ``test`` and ``epochs``
  one of ``12``, ``200`` (e.g. ``cifar10_valid_acc_12ep``, ``cifar10_test_acc_200ep``);
- optionally ``{dataset}_train_seconds_{epochs}ep``: simulated training time, which lets searches
  be budgeted in GPU-seconds as in NATS-Bench's ``simulate_train_eval``.

Other columns are ignored. Only the columns an evaluator uses must be present. A lookup is an
index into a NumPy array (the cell's base-5 index, see :attr:`NB201Architecture.index`).
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from nas_env.data.paths import DATA_ENV_VAR, search_roots
from nas_env.errors import DatasetError, InvalidArchitectureError, check_choice
from nas_env.evaluators.base import Evaluator
from nas_env.records import EvalResult, Metric
from nas_env.search_spaces.nb201 import NUM_CELLS, NB201Architecture

DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "imagenet16_120")
"""Datasets of NB201 tables."""
SPLITS: tuple[str, ...] = ("valid", "test")
"""Accuracy splits."""
EPOCHS: tuple[int, ...] = (12, 200)
"""Training lengths of NB201's two schedules (NATS-Bench's ``hp="12"`` and ``hp="200"``)."""
ACCURACY_COLUMNS: tuple[str, ...] = tuple(
    f"{d}_{s}_acc_{e}ep" for d in DATASETS for s in SPLITS for e in EPOCHS
)
"""Every accuracy column name the schema defines (percent)."""
TRAIN_SECONDS_COLUMNS: tuple[str, ...] = tuple(f"{d}_train_seconds_{e}ep" for d in DATASETS for e in EPOCHS)
"""Every training-time column name the schema defines (seconds)."""
ARCH_COLUMN = "arch_str"
DEFAULT_REWARD_METRIC = "cifar10_valid_acc_12ep"
"""The search signal by default: 12-epoch validation accuracy, as NATS-Bench recommends."""
DEFAULT_REPORT_METRIC = "cifar10_test_acc_200ep"
"""The accuracy reported by default: 200-epoch test accuracy, as NB201's result tables."""


DEFAULT_TABLES: tuple[str, ...] = ("nb201/nb201.csv", "nb201/nb201_cifar10.csv")
"""Where ``table_path="auto"`` looks under each data root, in order: the full table that
``nas-bench-table`` writes, then a CIFAR-10-only one."""


def find_nb201_table(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The default NB201 table (``table_path="auto"``), found under the data roots.

    The first of :data:`DEFAULT_TABLES` under ``data_dir``, ``$NAS_ENV_DATA`` or the user cache
    folder (``~/.cache/nas_env/data``), in that order.

    Raises:
        DatasetError: No table in any of them; the message lists the paths tried and how to
            build a table.
    """
    tried = [root / name for root in search_roots(data_dir) for name in DEFAULT_TABLES]
    for path in tried:
        if path.is_file():
            return path
    listed = ", ".join(str(p) for p in tried)
    raise DatasetError(
        f"no NAS-Bench-201 table found; tried {listed}. Build one from NATS-Bench's topology files "
        f"(pip install 'nas-env[nats]'; nas-bench-table --nats PATH --out {tried[0]}), put an "
        f"existing table at one of these paths (or set ${DATA_ENV_VAR} or data_dir= to the folder "
        "holding nb201/; no table is downloaded, download= does not apply), or pass table_path=PATH; "
        "table_path=None trains the cells instead (see docs/nb201.md)"
    )


@dataclass(frozen=True)
class NB201Table:
    """An NB201 table in memory: each schema column as a float array indexed by cell index."""

    path: str
    """The CSV file it was read from."""
    sha256: str
    """Hash of the file's bytes (keys the results cache)."""
    columns: dict[str, np.ndarray]
    """Schema column name -> ``float64[15625]`` (NaN where a value was empty or not a number)."""
    bad_lines: dict[str, int]
    """Schema column name -> first CSV line whose value was empty or not a number."""

    def column(self, name: str) -> np.ndarray:
        """The values of ``name``, checked to be present and numeric.

        Raises:
            DatasetError: The table has no such column, or a value is empty or not a number.
        """
        if name not in self.columns:
            present = [c for c in (*ACCURACY_COLUMNS, *TRAIN_SECONDS_COLUMNS) if c in self.columns]
            raise DatasetError(
                f"NB201 table {self.path} has no column {name!r}; its schema columns are {present}. "
                f"Add the column or pick another metric."
            )
        if name in self.bad_lines:
            raise DatasetError(
                f"NB201 table {self.path}: column {name!r} has an empty or non-numeric value on "
                f"line {self.bad_lines[name]}"
            )
        return self.columns[name]


def _parse_rows(path: Path, reader: Iterator[list[str]]) -> NB201Table:
    header = next(reader, None)
    if header is None or ARCH_COLUMN not in header:
        raise DatasetError(
            f"NB201 table {path} has no {ARCH_COLUMN!r} column (header: {header}); expected "
            f"{ARCH_COLUMN!r} plus accuracy columns such as {DEFAULT_REWARD_METRIC!r}"
        )
    arch_col = header.index(ARCH_COLUMN)
    wanted = {name: i for i, name in enumerate(header) if name in (*ACCURACY_COLUMNS, *TRAIN_SECONDS_COLUMNS)}
    columns = {name: np.full(NUM_CELLS, np.nan) for name in wanted}
    bad_lines: dict[str, int] = {}
    seen = np.zeros(NUM_CELLS, dtype=np.int64)  # line of each cell's row, 0 = not seen
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DatasetError(
                f"NB201 table {path}, line {line}: {len(row)} fields, header has {len(header)}"
            )
        try:
            index = NB201Architecture.from_str(row[arch_col]).index
        except InvalidArchitectureError as exc:
            raise DatasetError(f"NB201 table {path}, line {line}: malformed {ARCH_COLUMN}: {exc}") from exc
        if seen[index]:
            raise DatasetError(
                f"NB201 table {path}: duplicate {ARCH_COLUMN} {row[arch_col]!r} "
                f"on lines {seen[index]} and {line}"
            )
        seen[index] = line
        for name, col in wanted.items():
            try:
                value = float(row[col])
            except ValueError:
                value = math.nan
            if math.isnan(value):
                bad_lines.setdefault(name, line)
            columns[name][index] = value
    missing = np.flatnonzero(seen == 0)
    if len(missing):
        raise DatasetError(
            f"NB201 table {path} has {NUM_CELLS - len(missing)} of the {NUM_CELLS} cells; "
            f"{len(missing)} are missing, e.g. {NB201Architecture.from_index(int(missing[0])).to_str()!r}"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return NB201Table(str(path), digest, columns, bad_lines)


@lru_cache(maxsize=4)
def _load_cached(path: str, _mtime_ns: int, _size: int) -> NB201Table:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return _parse_rows(Path(path), csv.reader(f))


def load_nb201_table(path: str | os.PathLike[str]) -> NB201Table:
    """Read and validate an NB201 table (cached per process until the file changes).

    Raises:
        DatasetError: The file is missing or unreadable, lacks ``arch_str``, has a malformed or
            duplicate ``arch_str``, a row of the wrong width, or not all 15,625 cells.
    """
    resolved = Path(path).expanduser().resolve()
    try:
        stat = resolved.stat()
    except OSError as exc:
        raise DatasetError(f"NB201 table {resolved} cannot be read: {exc}") from exc
    return _load_cached(str(resolved), stat.st_mtime_ns, stat.st_size)


def _check_percent(table: NB201Table, name: str) -> np.ndarray:
    values = table.column(name)
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > 100:
        raise DatasetError(
            f"NB201 table {table.path}: column {name!r} has values in [{low}, {high}], not in percent"
        )
    if high <= 1.0:
        raise DatasetError(
            f"NB201 table {table.path}: column {name!r} has values in [{low}, {high}]; accuracies must be "
            f"in percent (0-100), not fractions: multiply them by 100"
        )
    return values


def train_seconds_column(metric: str) -> str:
    """The training-time column matching an accuracy column (same dataset and epochs)."""
    dataset, _, rest = metric.rpartition("_acc_")
    return f"{dataset.rsplit('_', 1)[0]}_train_seconds_{rest}"


class TabularEvaluator(Evaluator):
    """Looks NB201 cells up in a table: no training, microseconds per evaluation.

    ``val_accuracy`` is the ``reward_metric`` column and ``test_accuracy`` the ``report_metric``
    column, both as fractions in [0, 1]. ``cost_s`` is the simulated training time of the reward
    metric's dataset and epochs when the table has that ``*_train_seconds_*`` column, else 0.

    Args:
        table_path: The CSV table (see the module docstring).
        reward_metric: Accuracy column that scores architectures for the search.
        report_metric: Accuracy column reported as ``test_accuracy``; never a reward.

    Raises:
        ValueError: A metric name is not a schema accuracy column.
        DatasetError: The table is invalid or lacks a column it needs.
    """

    metric_names = (Metric.VAL_ACCURACY.value, Metric.TEST_ACCURACY.value)

    def __init__(
        self,
        table_path: str | os.PathLike[str],
        reward_metric: str = DEFAULT_REWARD_METRIC,
        report_metric: str = DEFAULT_REPORT_METRIC,
    ) -> None:
        """Load the table and keep the two accuracy columns (and the matching train seconds)."""
        check_choice("reward_metric", reward_metric, ACCURACY_COLUMNS)
        check_choice("report_metric", report_metric, ACCURACY_COLUMNS)
        table = load_nb201_table(table_path)
        self.table_path = table.path
        self.reward_metric = reward_metric
        self.report_metric = report_metric
        # rounded so that 59.916 % reads 0.59916, not 0.5991599999999999, in CSV exports
        self._reward = np.round(_check_percent(table, reward_metric) / 100.0, 12)
        self._report = np.round(_check_percent(table, report_metric) / 100.0, 12)
        seconds_col = train_seconds_column(reward_metric)
        self._seconds = table.column(seconds_col) if seconds_col in table.columns else None
        self._fingerprint = hashlib.sha256(
            f"nb201-table-{table.sha256}-{reward_metric}-{report_metric}".encode()
        ).hexdigest()[:16]

    @property
    def fingerprint(self) -> str:
        """The table's content hash and the two metric names."""
        return self._fingerprint

    @property
    def has_train_seconds(self) -> bool:
        """Whether the table gives training seconds for the reward metric (time budgets work)."""
        return self._seconds is not None

    def lookup(self, arch: NB201Architecture) -> tuple[float, float, float]:
        """``(val_accuracy, test_accuracy, train_seconds)`` of ``arch``; accuracies in [0, 1]."""
        i = arch.index
        seconds = 0.0 if self._seconds is None else float(self._seconds[i])
        return float(self._reward[i]), float(self._report[i]), seconds

    def best_cell(self, by: str = "reward") -> tuple[NB201Architecture, float, float]:
        """The cell with the highest reward metric (``by="reward"``) or report metric (``"report"``).

        Returns:
            The cell, its ``val_accuracy`` and its ``test_accuracy`` (fractions): what a perfect
            search finds, and the best the table holds.

        Raises:
            ValueError: ``by`` is neither ``"reward"`` nor ``"report"``.
        """
        check_choice("by", by, ("reward", "report"))
        index = int(np.argmax(self._reward if by == "reward" else self._report))
        return NB201Architecture.from_index(index), float(self._reward[index]), float(self._report[index])

    def evaluate(self, arch: NB201Architecture, seed: int) -> EvalResult:
        """Look ``arch`` up; the table has one value per cell, so ``seed`` only gets recorded."""
        val, test, seconds = self.lookup(arch)
        metrics = {Metric.VAL_ACCURACY.value: val, Metric.TEST_ACCURACY.value: test}
        return EvalResult("ok", metrics, num_params=0, cost_s=seconds, seed=seed)
