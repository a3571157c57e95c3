"""What every section of ``bench_fidelity.py`` shares: recipes from ``--presets``, children trained
once into a results store, and the printed row of taus and seconds per child."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import fields
from typing import Any, get_args

import numpy as np

from nas_env.backends import make_backend
from nas_env.evaluation import child_seed
from nas_env.evaluators.base import Evaluator
from nas_env.records import EvalResult
from nas_env.store import ResultsStore
from nas_env.training.ptb import PTB_FIDELITIES, PtbFidelity
from nas_env.training.recipes import FIDELITIES, NB201_FIDELITIES, Fidelity, Precision

PRECISIONS: tuple[str, ...] = get_args(Precision)
FIELD_TYPES: dict[str, type] = {f.name: type(getattr(Fidelity(), f.name)) for f in fields(Fidelity)}
"""Each recipe field and the type its ``--presets`` override is parsed as."""
PTB_FIELD_TYPES: dict[str, type] = {
    f.name: int if getattr(PtbFidelity(), f.name) is None else type(getattr(PtbFidelity(), f.name))
    for f in fields(PtbFidelity)
}
"""The same for the PTB recipe (a field whose default is None, such as ``train_tokens``: an int, or
``none``)."""
_BOOLS = {"true": True, "1": True, "false": False, "0": False}


class Trainer:
    """Trains (arch, evaluator, training seed) once, keeping every result in a SQLite store.

    With ``workers > 1`` the children missing from the store train in a process pool
    (:class:`~nas_env.backends.PoolBackend`, the cores divided between the workers), each stored
    the moment it completes. A child's own seconds are then those of one worker's share of the
    cores; :meth:`wall_per_child` is what the machine spent per child.
    """

    def __init__(self, store: ResultsStore, workers: int = 1, verbose: bool = True) -> None:
        self.store, self.workers, self.verbose = store, workers, verbose
        self._wall: dict[str, list[float]] = {}  # label -> [wall seconds, children trained] this run

    def wall_per_child(self, label: str) -> str:
        """Wall-clock seconds per child trained under ``label`` in this run ('' if all were cached)."""
        wall, trained = self._wall.get(label, [0.0, 0])
        return f"  wall/child {wall / trained:5.1f} ({int(trained)} trained now)" if trained else ""

    def accuracies(
        self, evaluator: Evaluator, archs: Sequence[Any], seed: int, label: str
    ) -> tuple[list, list]:
        """Validation accuracies (%) and seconds of ``archs`` at ``evaluator`` with training ``seed``."""
        values, secs = self.scores(evaluator, archs, seed, label, "val_accuracy")
        return [100 * v for v in values], secs

    def scores(
        self,
        evaluator: Evaluator,
        archs: Sequence[Any],
        seed: int,
        label: str,
        metric: str,
        failed_value: float | None = None,
    ) -> tuple[list, list]:
        """``metric`` and seconds of ``archs`` at ``evaluator`` with training ``seed``.

        A child whose training fails stops the run, unless ``failed_value`` is given: it is then
        stored as failed (not trained again) and scores ``failed_value``.
        """
        key = f"{evaluator.fingerprint}:s{seed}"
        results = {arch_name(arch): self.store.lookup(arch_name(arch), key) for arch in archs}
        if failed_value is not None:
            for row in self.store.rows(key):
                if row["status"] == "failed" and results.get(str(row["arch"]), 0) is None:
                    failed = EvalResult("failed", cost_s=float(row["cost_s"]), error=str(row["error"]))  # type: ignore[arg-type]
                    results[str(row["arch"])] = (failed, failed_value)
        missing = [arch for arch in archs if results[arch_name(arch)] is None]
        requests = [(arch, child_seed(seed, arch_name(arch))) for arch in missing]
        pool = self.workers > 1  # inline, the local backend trains each child as it is harvested
        backend = (
            make_backend("pool", evaluator, num_workers=self.workers)
            if pool
            else make_backend("local", evaluator)
        )
        start = time.perf_counter()
        with backend:
            for n, (i, done) in enumerate(backend.as_completed(requests), 1):
                arch_str, result = arch_name(missing[i]), done.result
                if result.status != "ok" and failed_value is None:
                    raise SystemExit(f"{arch_str} failed at {label}: {result.error}")
                value = result.metrics[metric] if result.status == "ok" else failed_value
                self.store.add(arch_str, key, result, value)
                results[arch_str] = (result, value)
                if self.verbose:
                    shown = f"{100 * value:5.1f}" if metric == "val_accuracy" else f"{value:7.1f}"
                    print(
                        f"  [{label} seed {seed} {n:2d}/{len(missing)}] {shown}  "
                        f"{result.cost_s:6.1f} s  {arch_str}",
                        flush=True,
                    )
        wall = self._wall.setdefault(label, [0.0, 0])
        wall[0] += time.perf_counter() - start
        wall[1] += len(missing)
        if self.verbose and len(missing) < len(archs):
            print(f"  [{label} seed {seed}] {len(archs) - len(missing)} of {len(archs)} cached", flush=True)
        scored = [results[arch_name(arch)] for arch in archs]
        secs = [r.cost_s if r.status == "ok" else math.nan for r, _ in scored]  # type: ignore[union-attr]
        return [value for _, value in scored], secs


def arch_name(arch: Any) -> str:
    """The store key of an architecture (``"lstm"``, the PTB baseline, is its own name)."""
    return arch if isinstance(arch, str) else arch.to_str()


def parse_preset(spec: str, space: str = "cnn") -> tuple[str, dict[str, Any]]:
    """A ``--presets`` entry: a preset name, then ``:``-separated overrides of its recipe.

    ``"proxy"`` -> ``("proxy", {})``; ``"proxy:fp32"`` -> ``("proxy", {"precision": "fp32"})`` (a
    bare precision); ``"proxy:epochs=4:resolution=32"`` -> any :class:`Fidelity` fields, so a
    variant of a preset is measured on the same sample (each variant is its own cache key). With
    ``space="ptb"`` the presets and fields are :class:`PtbFidelity`'s (``"proxy:train_tokens=500000"``;
    precisions do not apply); with ``space="nb201"`` the presets are NAS-Bench-201's.

    Raises:
        ValueError: Unknown preset, field or precision, or a value the field rejects (the message
            names the bad one and the allowed ones).
    """
    presets = {"ptb": PTB_FIDELITIES, "nb201": NB201_FIDELITIES}.get(space, FIDELITIES)
    field_types = PTB_FIELD_TYPES if space == "ptb" else FIELD_TYPES
    name, *parts = spec.split(":")
    if name not in presets:
        raise ValueError(f"--presets: unknown preset {name!r}; choose from {sorted(presets)}")
    overrides: dict[str, Any] = {}
    for part in parts:
        field, sep, value = part.partition("=")
        if not sep:
            if space == "ptb":
                raise ValueError(f"--presets: {part!r} in {spec!r} is not FIELD=VALUE")
            if part not in PRECISIONS:
                raise ValueError(
                    f"--presets: unknown precision {part!r} in {spec!r}; choose from {PRECISIONS} "
                    "or write FIELD=VALUE"
                )
            overrides["precision"] = part
        elif field not in field_types:
            allowed = sorted(field_types)
            raise ValueError(f"--presets: unknown field {field!r} in {spec!r}; choose from {allowed}")
        elif space == "ptb" and getattr(PtbFidelity(), field) is None and value.lower() == "none":
            overrides[field] = None
        else:
            kind = field_types[field]
            try:
                overrides[field] = _BOOLS[value.lower()] if kind is bool else kind(value)
            except (KeyError, ValueError):
                bad = f"--presets: {field}={value!r} in {spec!r}"
                raise ValueError(f"{bad} is not of type {kind.__name__}") from None
    presets[name].replace(**overrides)  # validates the values now, before anything trains
    return name, overrides


def row(name: str, taus: dict[str, float], secs: list[float]) -> str:
    cols = "  ".join(f"{k} {v:6.3f}" for k, v in taus.items())
    trained = [s for s in secs if not math.isnan(s)]  # NaN: a failed child, its seconds unknown
    spread = f"(min {min(trained):5.1f}, max {max(trained):6.1f})" if trained else ""
    return f"  {name:10s} {cols}   s/child mean {np.mean(trained) if trained else math.nan:6.1f} {spread}"
