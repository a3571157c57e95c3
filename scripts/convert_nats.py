"""``nas-bench-table``: build the NAS-Bench-201 table from NATS-Bench's topology-space files.

::

    pip install "nas-env[nats]"     # the nats_bench package
    nas-bench-table --nats ~/.torch/NATS-tss-v1_0-3ffb9-simple --out ~/.cache/nas_env/data/nb201/nb201.csv

One row per cell of ``nats_bench.create(PATH, "tss", fast_mode=True)`` (all 15,625), with every
accuracy column of the schema (CIFAR-10, CIFAR-100, ImageNet16-120; 12 and 200 epochs) and the
training seconds, read with ``get_more_info(index, dataset, hp=..., is_random=False)`` (the mean
over NATS-Bench's training seeds):

================================  ==================  =====================
column                            NATS-Bench dataset  ``get_more_info`` key
================================  ==================  =====================
``cifar10_valid_acc_{E}ep``       ``cifar10-valid``   ``valid-accuracy``
``cifar10_test_acc_{E}ep``        ``cifar10``         ``test-accuracy``
``cifar100_{split}_acc_{E}ep``    ``cifar100``        ``{split}-accuracy``
``imagenet16_120_{split}_acc_…``  ``ImageNet16-120``  ``{split}-accuracy``
``{dataset}_train_seconds_{E}ep`` the valid column's  ``train-all-time``
================================  ==================  =====================

The file is written atomically and read back through the package's own validation, so a table
this command writes is one ``NAS-Bench-201-v0`` accepts (``table_path="auto"`` finds it at the
path above).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from nas_env.errors import DependencyNotInstalled, NASEnvError
from nas_env.evaluators.tabular import (
    ACCURACY_COLUMNS,
    ARCH_COLUMN,
    DATASETS,
    EPOCHS,
    TRAIN_SECONDS_COLUMNS,
    load_nb201_table,
)
from nas_env.search_spaces.nb201 import NUM_CELLS
from scripts._cli import OneLineParser

NATS_DATASETS: dict[tuple[str, str], str] = {
    ("cifar10", "valid"): "cifar10-valid",
    ("cifar10", "test"): "cifar10",
    ("cifar100", "valid"): "cifar100",
    ("cifar100", "test"): "cifar100",
    ("imagenet16_120", "valid"): "ImageNet16-120",
    ("imagenet16_120", "test"): "ImageNet16-120",
}
"""(our dataset, split) -> the NATS-Bench dataset whose ``get_more_info`` holds that accuracy."""


class TopologyAPI(Protocol):
    """The part of NATS-Bench's topology API the converter reads."""

    def __len__(self) -> int: ...

    def arch(self, index: int) -> str:
        """The cell string of ``index``."""
        ...

    def get_more_info(
        self, index: int, dataset: str, iepoch: int | None = None, hp: str = "12", is_random: bool = True
    ) -> dict[str, Any]:
        """Losses, accuracies (percent) and times of ``index`` trained on ``dataset``."""
        ...


def column_sources() -> dict[str, tuple[str, str, str]]:
    """Every schema column -> (NATS-Bench dataset, ``hp``, ``get_more_info`` key)."""
    sources: dict[str, tuple[str, str, str]] = {}
    for name in ACCURACY_COLUMNS:
        dataset, rest = name.split("_acc_")
        dataset, split = dataset.rsplit("_", 1)
        sources[name] = (NATS_DATASETS[dataset, split], rest.removesuffix("ep"), f"{split}-accuracy")
    for dataset in DATASETS:
        for epochs in EPOCHS:
            name = f"{dataset}_train_seconds_{epochs}ep"
            sources[name] = (NATS_DATASETS[dataset, "valid"], str(epochs), "train-all-time")
    assert set(sources) == {*ACCURACY_COLUMNS, *TRAIN_SECONDS_COLUMNS}
    return sources


def table_row(api: TopologyAPI, index: int, sources: dict[str, tuple[str, str, str]]) -> list[str]:
    """One CSV row: index, cell string, then each column of ``sources`` (empty where NATS has none)."""
    infos: dict[tuple[str, str], dict[str, Any]] = {}
    values = []
    for dataset, hp, key in sources.values():
        if (dataset, hp) not in infos:
            infos[dataset, hp] = api.get_more_info(index, dataset, hp=hp, is_random=False)
        value = infos[dataset, hp].get(key)
        values.append("" if value is None else repr(float(value)))
    return [str(index), api.arch(index), *values]


def write_table(
    api: TopologyAPI, out: str | os.PathLike[str], progress: Callable[[int], Any] | None = None
) -> Path:
    """Write the table of every cell of ``api`` to ``out`` (atomically) and validate it.

    Raises:
        DatasetError: The API does not hold NB201's 15,625 cells, or the written table is invalid.
    """
    out = Path(out)
    if len(api) != NUM_CELLS:
        raise NASEnvError(
            f"the NATS-Bench API holds {len(api)} architectures; the topology space has {NUM_CELLS}"
        )
    sources = column_sources()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["arch_index", ARCH_COLUMN, *sources])
        for index in range(len(api)):
            writer.writerow(table_row(api, index, sources))
            if progress is not None:
                progress(1)
    load_nb201_table(tmp)  # every cell once, well-formed strings, numeric columns
    os.replace(tmp, out)
    return out


def open_nats(path: str) -> TopologyAPI:
    """NATS-Bench's topology API over ``path`` (fast mode: one cell's file at a time).

    Raises:
        DependencyNotInstalled: The ``nats_bench`` package is missing.
    """
    try:
        from nats_bench import create
    except ImportError as exc:
        raise DependencyNotInstalled(
            'nas-bench-table needs NATS-Bench\'s API: pip install "nas-env[nats]" (or pip install nats_bench)'
        ) from exc
    api: TopologyAPI = create(path, "tss", fast_mode=True, verbose=False)
    return api


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nas-bench-table``."""
    parser = OneLineParser(
        prog="nas-bench-table", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--nats", required=True, help="NATS-Bench topology files (e.g. NATS-tss-v1_0-3ffb9-simple)"
    )
    parser.add_argument(
        "--out", required=True, help="CSV table to write (e.g. $NAS_ENV_DATA/nb201/nb201.csv)"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    args = parser.parse_args(argv)
    try:
        api = open_nats(args.nats)
        with tqdm(total=len(api), unit="cell", disable=not args.progress, desc="nas-bench-table") as bar:
            out = write_table(api, args.out, bar.update)
    except (NASEnvError, OSError, ValueError) as exc:
        print(f"nas-bench-table: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {NUM_CELLS} cells, {len(column_sources())} columns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
