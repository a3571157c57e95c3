"""How well does each fidelity preset rank architectures? Kendall tau and seconds per child, side by side.

Two spaces, each on a seeded sample named in the output:

- ``nb201``: ``--cells`` cells drawn uniformly (``--seed``) from NAS-Bench-201's 15,625, trained in the
  env's trained mode at each preset; tau against the table's ``cifar10_test_acc_200ep`` (ground truth:
  NB201's 200-epoch training, averaged over its seeds), and the table's own 12-epoch validation
  accuracy on the same cells for reference. Uses ``$NAS_ENV_DATA/nb201/nb201_cifar10.csv`` when
  present (``--table`` overrides); the synthetic test table's made-up values only show the script runs.
- ``ptb``: the NASCell, the LSTM and the tanh RNN as named references plus ``--rnn-cells`` random base-8
  cells of NAS-PTB-v0 (``--seed``), each trained at each preset with two training seeds and at the long
  ``reference`` recipe (:data:`PTB_REFERENCE`); tau of validation perplexities as for ``cnn``, and every
  cell's perplexity per preset side by side. A cell whose training diverges ranks last (perplexity inf).
  Not part of ``both``.
- ``cnn``: ``--children`` random 6-layer children of NAS-CIFAR10-v0 (``--seed``), trained at each preset
  with two training seeds (seed-to-seed tau: does the preset rank reproducibly?) and at the long
  ``reference`` recipe (:data:`CNN_REFERENCE`, 10k images x 10 epochs at 32x32) with
  ``--reference-seeds`` seeds: tau of each preset's seed, and of the mean of its seeds, against the
  reference's mean accuracy.

Each row prints ``s/child``, every child's own training seconds (with ``--workers``, on its worker's
share of the cores), and ``wall/child``, the wall-clock seconds this run spent per child it trained
(what the machine pays per child; absent when all came from the store).

Every training result is kept in a SQLite store (``--store``) as soon as it is trained, so a killed
run resumes and a rerun prints at once. ``--workers N`` trains N children at a time in worker
processes, the cores divided between them. CIFAR-10 and Penn Treebank are read from ``$NAS_ENV_DATA``.
The load average is printed at the start and end, since timings on a shared machine depend on it.

Run: ``NAS_ENV_DATA=../shared/data python benchmarks/bench_fidelity.py --workers 2`` (both spaces,
presets smoke and proxy and the long reference: about 2 hours on 2 CPU cores the first time;
``--space``, ``--presets`` and ``--no-reference`` narrow it).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any, get_args

import numpy as np
import torch

from nas_env.backends import make_backend, threads_per_worker
from nas_env.data.paths import data_roots
from nas_env.evaluation import child_seed
from nas_env.evaluators.base import Evaluator
from nas_env.evaluators.cifar import CifarTrainingEvaluator
from nas_env.evaluators.nb201_synthetic import write_synthetic_table
from nas_env.evaluators.nb201_training import NB201TrainingEvaluator
from nas_env.evaluators.ptb import PtbTrainingEvaluator
from nas_env.evaluators.tabular import load_nb201_table
from nas_env.ranking import kendall_tau
from nas_env.records import EvalResult
from nas_env.search_spaces.cnn import CnnSearchSpace
from nas_env.search_spaces.nb201 import NUM_CELLS, NB201Architecture
from nas_env.search_spaces.rnn_cell import NASCELL, TANH_RNN, RnnCellSearchSpace
from nas_env.store import ResultsStore
from nas_env.training.ptb import PTB_FIDELITIES, PtbFidelity
from nas_env.training.recipes import FIDELITIES, NB201_FIDELITIES, SHORT_TRAINING, Fidelity, Precision

PRECISIONS: tuple[str, ...] = get_args(Precision)
FIELD_TYPES: dict[str, type] = {f.name: type(getattr(Fidelity(), f.name)) for f in fields(Fidelity)}
"""Each recipe field and the type its ``--presets`` override is parsed as."""
PTB_FIELD_TYPES: dict[str, type] = {
    f.name: int if getattr(PtbFidelity(), f.name) is None else type(getattr(PtbFidelity(), f.name))
    for f in fields(PtbFidelity)
}
"""The same for the PTB recipe (``train_tokens``/``valid_tokens``: an int, or ``none`` for all)."""
_BOOLS = {"true": True, "1": True, "false": False, "0": False}
TARGET = "cifar10_test_acc_200ep"
SIGNAL = "cifar10_valid_acc_12ep"
CNN_REFERENCE = SHORT_TRAINING.replace(epochs=10, resolution=32)
"""The CNN reference: 10k images x 10 epochs at full 32x32 resolution, cosine schedule, scored on
all 5,000 validation images, bf16 where fast: ~9 min per child on one CPU core. Built on
:data:`SHORT_TRAINING`, not on ``proxy``, so reworking the proxy leaves the reference (and its cache
key) alone. On a GPU this length ranked 12 random children with seed-to-seed tau 0.82, and
0.85-0.91 against 30 epochs (issue 10), so it stands in for long training at a cost a CPU session
can pay."""
REFERENCE_LABEL = "10k x 10 epochs, 32x32"
PTB_REFERENCE = PtbFidelity(
    hidden_size=64,
    epochs=1,
    train_tokens=400_000,
    valid_tokens=None,
    batch_size=16,
    bptt=35,
    optimizer="adam",
    lr=1e-2,
    lr_schedule="cosine",
    dropout=0.0,
    init_scale=0.1,
    eval_batch_size=16,
    unigram_bias=True,
)
"""The PTB reference: the proxy's 64-unit model trained on twice its tokens (the first 400k of the
929k training tokens, one pass, Adam with a cosine decay) and scored on the whole 73k-token
validation split, not the proxy's 20k-token prefix. Short for a reference: what a 2-core CPU
session shared with other jobs could pay for 15 cells. Spelled out, not derived from ``proxy``, so
reworking the proxy leaves the reference (and its cache key) alone."""
PTB_REFERENCE_LABEL = "400k tokens, 64 units, all 73k validation tokens"


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
    precisions do not apply).

    Raises:
        ValueError: Unknown preset, field or precision, or a value the field rejects (the message
            names the bad one and the allowed ones).
    """
    presets, field_types = (PTB_FIDELITIES, PTB_FIELD_TYPES) if space == "ptb" else (FIDELITIES, FIELD_TYPES)
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
        elif space == "ptb" and field in ("train_tokens", "valid_tokens") and value.lower() == "none":
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


def cnn_fidelity(spec: str) -> str | Fidelity:
    """The CNN recipe of a ``--presets`` entry (a preset name, or a preset with overrides)."""
    name, overrides = parse_preset(spec)
    return FIDELITIES[name].replace(**overrides) if overrides else name


def nb201_evaluator(spec: str, args: argparse.Namespace) -> NB201TrainingEvaluator:
    """NB201's evaluator for a ``--presets`` entry: the preset's (reduced) network and recipe."""
    name, overrides = parse_preset(spec)
    make = lambda fidelity, **net: NB201TrainingEvaluator(  # noqa: E731
        fidelity, data_dir=args.data_dir, device=args.device, **net
    )
    preset = make(name)
    if not overrides:
        return preset
    net = {"channels": preset.channels, "cells_per_stage": preset.cells_per_stage}
    return make(NB201_FIDELITIES[name].replace(**overrides), **net)


def _row(name: str, taus: dict[str, float], secs: list[float]) -> str:
    cols = "  ".join(f"{k} {v:6.3f}" for k, v in taus.items())
    trained = [s for s in secs if not math.isnan(s)]  # NaN: a failed child, its seconds unknown
    spread = f"(min {min(trained):5.1f}, max {max(trained):6.1f})" if trained else ""
    return f"  {name:10s} {cols}   s/child mean {np.mean(trained) if trained else math.nan:6.1f} {spread}"


def cnn_section(trainer: Trainer, presets: list[str], args: argparse.Namespace) -> list[str]:
    """Seed-to-seed tau and tau against the long reference for random 6-layer CNN children."""
    space = CnnSearchSpace(num_layers=6)
    rng = np.random.default_rng(args.seed)
    archs = [space.decode(space.sample(rng)) for _ in range(args.children)]
    make = lambda f: CifarTrainingEvaluator(f, data_dir=args.data_dir, device=args.device)  # noqa: E731
    lines = [f"CNN space: {args.children} random 6-layer children (CnnSearchSpace sample, seed {args.seed})"]
    runs_by_preset = {
        preset: [
            trainer.accuracies(make(cnn_fidelity(preset)), archs, s, preset) for s in range(args.train_seeds)
        ]
        for preset in presets
    }
    reference = None
    if args.reference:  # its mean over its seeds is the ranking each preset seed is compared to
        reference_evaluator = make(CNN_REFERENCE)
        ref_runs = [
            trainer.accuracies(reference_evaluator, archs, s, "reference")
            for s in range(args.reference_seeds)
        ]
        reference = np.mean([acc for acc, _ in ref_runs], axis=0)
        ref_tau = kendall_tau(ref_runs[0][0], ref_runs[1][0]) if len(ref_runs) > 1 else math.nan
        secs = [s for _, run_secs in ref_runs for s in run_secs]
        seeds = f"mean of {len(ref_runs)} seeds" if len(ref_runs) > 1 else "seed 0"
        lines.append(
            _row("reference", {"tau s0-s1": ref_tau}, secs)
            + f"  ({REFERENCE_LABEL}; {seeds})"
            + trainer.wall_per_child("reference")
        )
    for preset, runs in runs_by_preset.items():
        taus = {"tau s0-s1": kendall_tau(runs[0][0], runs[1][0]) if len(runs) > 1 else math.nan}
        if reference is not None:
            for s, (acc, _) in enumerate(runs):
                taus[f"seed {s} vs reference"] = kendall_tau(acc, reference)
            if len(runs) > 1:  # the seeds' mean: their noise averaged, what is left is the recipe's bias
                taus["mean vs reference"] = kendall_tau(np.mean([acc for acc, _ in runs], axis=0), reference)
        lines.append(_row(preset, taus, [s for run in runs for s in run[1]]) + trainer.wall_per_child(preset))
    return lines


def nb201_section(trainer: Trainer, presets: list[str], args: argparse.Namespace) -> list[str]:
    """Tau of each preset's validation accuracy against the table's 200-epoch test accuracy."""
    with tempfile.TemporaryDirectory() as tmp:
        table = load_nb201_table(args.table or default_table() or write_synthetic_table(tmp))
    target, signal = table.column(TARGET), table.column(SIGNAL)
    indices = np.random.default_rng(args.seed).choice(NUM_CELLS, args.cells, replace=False)
    archs = [NB201Architecture.from_index(int(i)) for i in indices]
    truth = target[indices]
    top = truth >= np.median(truth)  # the better half: fine ranking, without the easy chance-level cells
    lines = [
        f"NB201 trained mode: {args.cells} cells drawn uniformly (seed {args.seed}); "
        f"tau vs {TARGET} of {table.path}; 'top half': the {int(top.sum())} cells at or above the median",
        f"  table {SIGNAL}: tau {kendall_tau(signal[indices], truth):6.3f}  "
        f"top half {kendall_tau(signal[indices][top], truth[top]):6.3f}",
    ]
    for preset in presets:
        evaluator = nb201_evaluator(preset, args)
        runs = [trainer.accuracies(evaluator, archs, s, f"nb201 {preset}") for s in range(args.train_seeds)]
        taus = {f"tau seed {s}": kendall_tau(acc, truth) for s, (acc, _) in enumerate(runs)}
        taus["top half"] = kendall_tau(np.asarray(runs[0][0])[top], truth[top])
        if len(runs) > 1:
            taus["tau s0-s1"] = kendall_tau(runs[0][0], runs[1][0])
        net = f"network C={evaluator.channels} N={evaluator.cells_per_stage}"
        secs = [s for run in runs for s in run[1]]
        lines.append(_row(preset, taus, secs) + f"  {net}" + trainer.wall_per_child(f"nb201 {preset}"))
    return lines


def ptb_sample(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """The named references, then ``--rnn-cells`` random base-8 cells (``--seed``): (label, arch)."""
    space = RnnCellSearchSpace(base=8)
    rng = np.random.default_rng(args.seed)
    randoms = [(f"random {i}", space.decode(space.sample(rng))) for i in range(args.rnn_cells)]
    return [("LSTM", "lstm"), ("NASCell", NASCELL), ("tanh RNN", TANH_RNN), *randoms]


def ptb_section(trainer: Trainer, presets: list[str], args: argparse.Namespace) -> list[str]:
    """Seed-to-seed tau and tau against the long reference of validation perplexities on PTB."""
    sample = ptb_sample(args)
    archs = [arch for _, arch in sample]
    failed = math.inf  # a diverged child ranks below every trained one

    def evaluator(fidelity: PtbFidelity) -> PtbTrainingEvaluator:
        return PtbTrainingEvaluator(fidelity, data_dir=args.data_dir, device=args.device, download=False)

    def perplexities(fidelity: PtbFidelity, seed: int, label: str) -> tuple[list, list]:
        return trainer.scores(evaluator(fidelity), archs, seed, label, "val_perplexity", failed)

    lines = [
        f"PTB space: LSTM, NASCell, tanh RNN and {args.rnn_cells} random base-8 cells (RnnCellSearchSpace "
        f"sample, seed {args.seed}); validation perplexity (inf: diverged)"
    ]
    runs_by_preset = {}
    for preset in presets:
        name, overrides = parse_preset(preset, "ptb")
        fidelity = PTB_FIDELITIES[name].replace(**overrides)
        runs_by_preset[preset] = [perplexities(fidelity, s, preset) for s in range(args.train_seeds)]
    columns = {f"{p} s{s}": run[0] for p, runs in runs_by_preset.items() for s, run in enumerate(runs)}
    reference = None
    if args.reference:
        ref_runs = [perplexities(PTB_REFERENCE, s, "reference") for s in range(args.reference_seeds)]
        reference = np.exp(np.mean(np.log([ppl for ppl, _ in ref_runs]), axis=0))  # geometric mean
        ref_tau = kendall_tau(ref_runs[0][0], ref_runs[1][0]) if len(ref_runs) > 1 else math.nan
        seeds = f"geometric mean of {len(ref_runs)} seeds" if len(ref_runs) > 1 else "seed 0"
        lines.append(
            _row("reference", {"tau s0-s1": ref_tau}, [s for _, secs in ref_runs for s in secs])
            + f"  ({PTB_REFERENCE_LABEL}; {seeds})"
            + trainer.wall_per_child("reference")
        )
        columns["reference"] = list(reference)
    for preset, runs in runs_by_preset.items():
        taus = {"tau s0-s1": kendall_tau(runs[0][0], runs[1][0]) if len(runs) > 1 else math.nan}
        if reference is not None:
            for s, (ppl, _) in enumerate(runs):
                taus[f"seed {s} vs reference"] = kendall_tau(ppl, reference)
            if len(runs) > 1:
                mean = np.exp(np.mean(np.log([ppl for ppl, _ in runs]), axis=0))
                taus["mean vs reference"] = kendall_tau(mean, reference)
        lines.append(_row(preset, taus, [s for run in runs for s in run[1]]) + trainer.wall_per_child(preset))
        per_seed = [ppl for ppl, _ in runs]
        if len(runs) > 1:  # the geometric mean of the seeds' perplexities (inf if one diverged)
            per_seed.append(list(np.exp(np.mean(np.log(per_seed), axis=0))))
        for s, ppl in enumerate(per_seed):
            random_median = float(np.median(ppl[3:]))
            named = dict(zip(("LSTM", "NASCell", "tanh RNN"), ppl[:3], strict=False))
            beats = [n for n in ("LSTM", "NASCell") if named[n] < min(named["tanh RNN"], random_median)]
            lines.append(
                ("    seed {s}: " if s < len(runs) else "    mean:   ").format(s=s)
                + "  ".join(f"{n} {v:.1f}" for n, v in named.items())
                + f"  median random {random_median:.1f};  better than the tanh RNN and the median random "
                f"cell: {', '.join(beats) or 'neither'}"
            )
    widths = [max(12, len(c) + 2) for c in columns]
    header = f"  {'cell':10s}" + "".join(f"{c:>{w}s}" for c, w in zip(columns, widths, strict=True))
    lines += ["  validation perplexity per cell:", header + "  architecture"]
    for i, (label, arch) in enumerate(sample):
        values = "".join(f"{col[i]:{w}.1f}" for col, w in zip(columns.values(), widths, strict=True))
        lines.append(f"  {label:10s}{values}  {arch_name(arch)}")
    return lines


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: timings on a shared machine depend on them."""
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def default_table() -> str | None:
    """The real NB201 table under the data roots, if there is one."""
    for root in data_roots(None):
        path = root / "nb201" / "nb201_cifar10.csv"
        if path.is_file():
            return str(path)
    return None


def main(argv: Sequence[str] | None = None) -> None:
    """Train the samples (or read them from the store), then print the figures side by side."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--space", choices=("both", "cnn", "nb201", "ptb"), default="both", help="both: cnn and nb201"
    )
    parser.add_argument(
        "--presets",
        default="smoke,proxy",
        help=f"comma-separated, of {sorted(FIDELITIES)} (PTB: {sorted(PTB_FIDELITIES)}); "
        f"NAME:PRECISION ({'/'.join(PRECISIONS)}) overrides a preset's precision (proxy:fp32: what bf16 "
        "costs in ranking), NAME:FIELD=VALUE "
        "any recipe field (proxy:epochs=4:resolution=32; PTB: proxy:train_tokens=500000)",
    )
    parser.add_argument("--children", type=int, default=12, help="CNN children in the sample")
    parser.add_argument("--cells", type=int, default=24, help="NB201 cells in the sample")
    parser.add_argument(
        "--rnn-cells", type=int, default=12, help="random base-8 PTB cells, besides LSTM, NASCell, tanh RNN"
    )
    parser.add_argument(
        "--train-seeds", type=int, default=2, help="training seeds per preset (2: seed-to-seed tau)"
    )
    parser.add_argument(
        "--no-reference", dest="reference", action="store_false", help="skip the CNN reference"
    )
    parser.add_argument(
        "--reference-seeds", type=int, default=1, help="CNN reference training seeds (their mean is compared)"
    )
    parser.add_argument("--workers", type=int, default=1, help="children trained at once (worker processes)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the samples")
    parser.add_argument("--table", default=None, help="NB201 table (default: $NAS_ENV_DATA/nb201/...)")
    parser.add_argument("--store", default="runs/bench_fidelity.sqlite", help="results kept between runs")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--data-dir", default=None, help="root of the CIFAR-10 and ptb/ data (default: $NAS_ENV_DATA)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    presets = [p for p in args.presets.split(",") if p]
    for preset in presets:
        try:
            parse_preset(preset, "ptb" if args.space == "ptb" else "cnn")
        except ValueError as exc:
            parser.error(str(exc))
    if args.rnn_cells < 1:
        parser.error(f"--rnn-cells must be >= 1 (the sample also holds 3 named cells), got {args.rnn_cells}")
    if min(args.children, args.cells) < 2 or min(args.train_seeds, args.reference_seeds) < 1:
        parser.error(
            "Kendall's tau needs --children and --cells >= 2, and --train-seeds and --reference-seeds >= 1"
        )
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    trainer = Trainer(ResultsStore(args.store), workers=args.workers)
    sections: list[Callable[[Trainer, list[str], argparse.Namespace], list[str]]] = []
    if args.space in ("both", "cnn"):
        sections.append(cnn_section)
    if args.space in ("both", "nb201"):
        sections.append(nb201_section)
    if args.space == "ptb":
        sections.append(ptb_section)
    load = load_average()
    lines = [line for section in sections for line in section(trainer, presets, args)]
    wall = time.perf_counter() - start
    procs = (
        f"{args.workers} workers x {threads_per_worker(args.workers)} threads"
        if args.workers > 1
        else f"threads {torch.get_num_threads()}"
    )
    loads = f"load average {load} at the start, {load_average()} at the end"
    print(f"\n{procs}, wall {wall:.0f} s (cached results are free); {loads}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
