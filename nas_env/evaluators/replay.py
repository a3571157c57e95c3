"""Answer evaluations from a CSV of measured ones: a benchmark's figures re-checked without training.

A *measured-evaluations CSV* has one row per architecture and fidelity, holding what a results store
answers for it (its first successful evaluation: what every later cache hit returns), after
comment lines that say how the file was made::

    # made by: python benchmarks/bench_search.py ...
    arch,fidelity,score,seconds,seed
    |nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|...|,proxy,0.7934,41.73,1184720411

- ``fidelity``: the preset the child was trained at (``proxy``...), or ``zero_cost:NAME`` for a
  zero-cost score NAME of the untrained network (a screen's score);
- ``score``: the validation accuracy (a fraction) at a trained fidelity, the score itself for a
  ``zero_cost:`` row; empty for a child whose training failed (its reward is 0);
- ``seconds``: the measured seconds of that evaluation (``EvalResult.cost_s``);
- ``seed``: the seed it was trained (or scored) with.

:class:`ReplayEvaluator` answers every architecture from its row at one fidelity, with the row's
seconds as ``cost_s``: a search replayed through it gets the rewards and costs the original search
got, in seconds instead of hours. An architecture without a row is an error, never trained.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas_env.errors import DatasetError
from nas_env.evaluators.base import Evaluator
from nas_env.records import EvalResult, Metric

MEASURED_COLUMNS: tuple[str, ...] = ("arch", "fidelity", "score", "seconds", "seed")
"""The header of a measured-evaluations CSV, in order."""
ZERO_COST_PREFIX = "zero_cost:"
"""``fidelity`` of a zero-cost score's row: this prefix and the score's name."""


@dataclass(frozen=True)
class MeasuredEvaluation:
    """One row of a measured-evaluations CSV."""

    arch: str
    """Canonical architecture string."""
    fidelity: str
    """Preset name, or ``zero_cost:NAME``."""
    score: float | None
    """Validation accuracy (or zero-cost score); ``None``: the child failed."""
    seconds: float
    """Measured seconds of the evaluation."""
    seed: int
    """Training (or scoring) seed."""

    def to_result(self, metric: str) -> EvalResult:
        """The evaluation as the store held it: ``metric`` set to the score, ``cost_s`` to the seconds."""
        if self.score is None:
            error = "failed when measured (see the original results store)"
            return EvalResult("failed", cost_s=self.seconds, error=error, seed=self.seed)
        return EvalResult("ok", {metric: self.score}, cost_s=self.seconds, seed=self.seed)


def write_measured_csv(
    path: str | os.PathLike[str], rows: Iterable[MeasuredEvaluation], comments: Sequence[str] = ()
) -> Path:
    """Write ``rows`` after ``comments`` (each prefixed ``# ``), atomically; floats round-trip exactly."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        f.writelines(f"# {line}\n" for line in comments)
        writer = csv.writer(f)
        writer.writerow(MEASURED_COLUMNS)
        for row in rows:
            score = "" if row.score is None else repr(row.score)
            writer.writerow([row.arch, row.fidelity, score, repr(row.seconds), row.seed])
    os.replace(tmp, path)
    return path


def read_measured_csv(path: str | os.PathLike[str]) -> list[MeasuredEvaluation]:
    """Read a measured-evaluations CSV (comment lines skipped).

    Raises:
        DatasetError: The file is missing, its header is not :data:`MEASURED_COLUMNS`, or a row is
            malformed or repeats an ``(arch, fidelity)``; the message names the line.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DatasetError(f"measured-evaluations CSV {path} cannot be read: {exc}") from exc
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line and not line.startswith("#")]
    if not lines or next(csv.reader([lines[0][1]])) != list(MEASURED_COLUMNS):
        found = lines[0][1] if lines else "nothing"
        raise DatasetError(f"{path}: expected the header {','.join(MEASURED_COLUMNS)}, found {found!r}")
    rows: list[MeasuredEvaluation] = []
    seen: dict[tuple[str, str], int] = {}
    for number, line in lines[1:]:
        row = _parse_row(path, number, next(csv.reader([line])))
        key = (row.arch, row.fidelity)
        if key in seen:
            raise DatasetError(f"{path}: {row.arch!r} at {row.fidelity!r} on lines {seen[key]} and {number}")
        seen[key] = number
        rows.append(row)
    return rows


def _parse_row(path: Path, number: int, fields: list[str]) -> MeasuredEvaluation:
    if len(fields) != len(MEASURED_COLUMNS):
        raise DatasetError(f"{path}, line {number}: {len(fields)} fields, expected {len(MEASURED_COLUMNS)}")
    arch, fidelity, score, seconds, seed = fields
    try:
        row = MeasuredEvaluation(arch, fidelity, float(score) if score else None, float(seconds), int(seed))
    except ValueError as exc:
        raise DatasetError(f"{path}, line {number}: {exc}") from exc
    if not arch or not fidelity or not math.isfinite(row.seconds) or row.seconds < 0:
        raise DatasetError(f"{path}, line {number}: empty arch or fidelity, or bad seconds {seconds!r}")
    return row


class ReplayEvaluator(Evaluator):
    """Answers each architecture from its row of a measured-evaluations CSV at one fidelity.

    ``val_accuracy`` is the row's score and ``cost_s`` its measured seconds; the seed asked for is
    ignored (the row keeps the seed it was trained with). Works for any search space: rows are
    found by ``arch.to_str()``.

    Args:
        path: The CSV (see the module docstring).
        fidelity: The rows answered: a preset name such as ``"proxy"``.

    Raises:
        DatasetError: The CSV cannot be read, is malformed, or has no row at ``fidelity`` (the
            message lists the fidelities it has).
    """

    metric_names = (Metric.VAL_ACCURACY.value,)

    def __init__(self, path: str | os.PathLike[str], fidelity: str) -> None:
        """Read the CSV and keep the rows at ``fidelity``."""
        rows = read_measured_csv(path)
        self.path = str(path)
        self.fidelity = fidelity
        self.rows = {row.arch: row for row in rows if row.fidelity == fidelity}
        if not self.rows:
            present = sorted({row.fidelity for row in rows})
            raise DatasetError(f"{path} has no row at fidelity {fidelity!r}; it has {present}")
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        self._fingerprint = hashlib.sha256(f"replay-{digest}-{fidelity}".encode()).hexdigest()[:16]

    @property
    def fingerprint(self) -> str:
        """The CSV's content hash and the fidelity."""
        return self._fingerprint

    def evaluate(self, arch: Any, seed: int) -> EvalResult:
        """The row of ``arch`` as a result.

        Raises:
            DatasetError: ``arch`` has no row at this fidelity (a replay never trains).
        """
        row = self.rows.get(arch.to_str())
        if row is None:
            raise DatasetError(
                f"not in {self.path} at fidelity {self.fidelity!r} ({len(self.rows)} rows there); "
                "run without the replay to train it, then export again"
            )
        return row.to_result(Metric.VAL_ACCURACY.value)
