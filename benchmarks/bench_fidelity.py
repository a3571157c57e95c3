"""How well does each fidelity preset rank architectures? Kendall tau and seconds per child, side by side.

Two spaces, each on a seeded sample named in the output:

- ``nb201``: ``--cells`` cells drawn uniformly (``--seed``) from NAS-Bench-201's 15,625 (or from its
  best ``--top`` fraction, or the cells listed in ``--archs``), trained in the env's trained mode at
  each preset (``proxy:channels=8:cells_per_stage=3`` overrides the network too); tau against the
  table's ``cifar10_test_acc_200ep`` (ground truth: NB201's 200-epoch training, averaged over its
  seeds), with the table's own 12-epoch validation accuracy and the untrained cells' zero-cost scores
  on the same cells for reference. Uses ``$NAS_ENV_DATA/nb201/nb201_cifar10.csv`` when
  present (``--table`` overrides); the synthetic test table's made-up values only show the script runs.
- ``ptb`` (:mod:`_fidelity_ptb`): the NASCell, the LSTM and the tanh RNN as named references plus
  ``--rnn-cells`` random base-8 cells of NAS-PTB-v0 (``--seed``), each trained at each preset with two
  training seeds and at the long ``reference`` recipe (:data:`_fidelity_ptb.PTB_REFERENCE`); tau of
  validation perplexities as for ``cnn``, and every cell's perplexity per preset side by side. A cell
  whose training diverges ranks last (perplexity inf). Not part of ``both``.
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
presets smoke and proxy and the long reference: hours on 2 CPU cores the first time, see
docs/fidelity.md; ``--space``, ``--presets`` and ``--no-reference`` narrow it).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from _fidelity_ptb import ptb_section
from _fidelity_runs import PRECISIONS, Trainer, parse_preset, row

from nas_env.backends import threads_per_worker
from nas_env.data.paths import data_roots
from nas_env.evaluators.cifar import CifarTrainingEvaluator
from nas_env.evaluators.nb201_synthetic import write_synthetic_table
from nas_env.evaluators.nb201_training import NB201TrainingEvaluator
from nas_env.evaluators.tabular import load_nb201_table
from nas_env.evaluators.zero_cost import ZERO_COST_METRIC, ZeroCostEvaluator
from nas_env.ranking import kendall_tau
from nas_env.search_spaces.cnn import CnnArchitecture, CnnSearchSpace
from nas_env.search_spaces.nb201 import NUM_CELLS, NB201Architecture
from nas_env.store import ResultsStore
from nas_env.training.ptb import PTB_FIDELITIES
from nas_env.training.recipes import FIDELITIES, NB201_FIDELITIES, SHORT_TRAINING, Fidelity

TARGET = "cifar10_test_acc_200ep"
SIGNAL = "cifar10_valid_acc_12ep"
CNN_REFERENCE = SHORT_TRAINING.replace(epochs=10, resolution=32)
"""The CNN reference: 10k images x 10 epochs at full 32x32 resolution, cosine schedule, scored on
all 5,000 validation images. Built on :data:`SHORT_TRAINING`, not on ``proxy``, so reworking the
proxy leaves the reference (and its cache key) alone. Long enough to rank children as longer
training does, short enough for a CPU session to pay (its tau and cost: docs/fidelity.md)."""
REFERENCE_LABEL = "10k x 10 epochs, 32x32"


def cnn_fidelity(spec: str) -> str | Fidelity:
    """The CNN recipe of a ``--presets`` entry (a preset name, or a preset with overrides)."""
    name, overrides = parse_preset(spec)
    return FIDELITIES[name].replace(**overrides) if overrides else name


ZC_ROWS = ("live_params",)
"""Zero-cost scores printed beside the NB201 presets (with the ``ensemble``): the screens' default."""
NB201_NETWORK_FIELDS = ("channels", "cells_per_stage")
"""``--presets`` fields of NB201's network, not of the recipe: ``proxy:channels=8:cells_per_stage=3``."""


def split_network(spec: str) -> tuple[str, dict[str, int]]:
    """A ``--presets`` entry without its NB201 network fields, and those fields as integers.

    Raises:
        ValueError: A network field whose value is not an integer.
    """
    kept, net = [], {}
    for part in spec.split(":"):
        field, sep, value = part.partition("=")
        if sep and field in NB201_NETWORK_FIELDS:
            try:
                net[field] = int(value)
            except ValueError:
                raise ValueError(f"--presets: {part!r} in {spec!r} is not an integer") from None
        else:
            kept.append(part)
    return ":".join(kept), net


def nb201_evaluator(spec: str, args: argparse.Namespace) -> NB201TrainingEvaluator:
    """NB201's evaluator for a ``--presets`` entry: the preset's (reduced) network and recipe,
    with any recipe or network field overridden."""
    spec, net_overrides = split_network(spec)
    name, overrides = parse_preset(spec, "nb201")
    make = lambda fidelity, **net: NB201TrainingEvaluator(  # noqa: E731
        fidelity, data_dir=args.data_dir, device=args.device, **net
    )
    preset = make(name)
    if not overrides and not net_overrides:
        return preset
    net = {"channels": preset.channels, "cells_per_stage": preset.cells_per_stage, **net_overrides}
    return make(NB201_FIDELITIES[name].replace(**overrides), **net)


def cnn_sample(args: argparse.Namespace) -> list[CnnArchitecture]:
    """``--children`` random 6-layer children of the CNN space, drawn with NumPy seed ``--seed``."""
    space = CnnSearchSpace(num_layers=6)
    rng = np.random.default_rng(args.seed)
    return [space.decode(space.sample(rng)) for _ in range(args.children)]


def cnn_section(trainer: Trainer, presets: list[str], args: argparse.Namespace) -> list[str]:
    """Seed-to-seed tau and tau against the long reference for random 6-layer CNN children."""
    archs = cnn_sample(args)
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
            row("reference", {"tau s0-s1": ref_tau}, secs)
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
        lines.append(row(preset, taus, [s for run in runs for s in run[1]]) + trainer.wall_per_child(preset))
    return lines


def read_archs(path: str) -> list[NB201Architecture]:
    """The NB201 cells listed in ``path``, one architecture string a line (blank and ``#`` lines skipped).

    Raises:
        ValueError: A line that is not an NB201 cell (the message names the file and line).
    """
    archs = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                archs.append(NB201Architecture.from_str(line.strip()))
            except ValueError as exc:
                raise ValueError(f"--archs {path} line {number}: {exc}") from None
    return archs


def nb201_section(trainer: Trainer, presets: list[str], args: argparse.Namespace) -> list[str]:
    """Tau of each preset's validation accuracy against the table's 200-epoch test accuracy."""
    with tempfile.TemporaryDirectory() as tmp:
        table = load_nb201_table(args.table or default_table() or write_synthetic_table(tmp))
    target, signal = table.column(TARGET), table.column(SIGNAL)
    if args.archs:
        archs = read_archs(args.archs)
        indices = np.array([arch.index for arch in archs])
        sample = f"the {len(archs)} cells of {args.archs}"
    else:
        pool = np.arange(NUM_CELLS)
        if args.top < 1:  # a band at the top: how finely a signal ranks the cells a good search meets
            pool = np.argsort(-target, kind="stable")[: math.ceil(args.top * NUM_CELLS)]
        indices = np.random.default_rng(args.seed).choice(pool, args.cells, replace=False)
        archs = [NB201Architecture.from_index(int(i)) for i in indices]
        band = f" of the best {args.top:.0%} ({len(pool)} cells, {TARGET} >= {target[pool].min():.2f})"
        sample = f"{args.cells} cells drawn uniformly{band if args.top < 1 else ''} (seed {args.seed})"
    truth = target[indices]
    top = truth >= np.median(truth)  # the better half: fine ranking, without the easy chance-level cells
    lines = [
        f"NB201 trained mode: {sample}; "
        f"tau vs {TARGET} of {table.path}; 'top half': the {int(top.sum())} cells at or above the median",
        f"  table {SIGNAL}: tau {kendall_tau(signal[indices], truth):6.3f}  "
        f"top half {kendall_tau(signal[indices][top], truth[top]):6.3f}",
    ]
    # the screens' zero-cost scores of the same untrained cells (weights seed 0, as a screen's), for scale
    zero_cost = ZeroCostEvaluator(
        "nb201", "ensemble", data_dir=args.data_dir, device="cpu", extra_scores=ZC_ROWS
    )
    scored = [zero_cost.evaluate(arch, 0).metrics for arch in archs]
    for name in ("ensemble", *ZC_ROWS):
        values = np.array([m[ZERO_COST_METRIC if name == "ensemble" else f"zc_{name}"] for m in scored])
        lines.append(
            f"  zero-cost {name}: tau {kendall_tau(values, truth):6.3f}  "
            f"top half {kendall_tau(values[top], truth[top]):6.3f}"
        )
    for preset in presets:
        evaluator = nb201_evaluator(preset, args)
        runs = [trainer.accuracies(evaluator, archs, s, f"nb201 {preset}") for s in range(args.train_seeds)]
        taus = {f"tau seed {s}": kendall_tau(acc, truth) for s, (acc, _) in enumerate(runs)}
        taus["top half"] = kendall_tau(np.asarray(runs[0][0])[top], truth[top])
        if len(runs) > 1:
            taus["tau s0-s1"] = kendall_tau(runs[0][0], runs[1][0])
            taus["seeds' mean"] = kendall_tau(np.mean([acc for acc, _ in runs], axis=0), truth)
        net = f"network C={evaluator.channels} N={evaluator.cells_per_stage}"
        secs = [s for run in runs for s in run[1]]
        lines.append(row(preset, taus, secs) + f"  {net}" + trainer.wall_per_child(f"nb201 {preset}"))
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


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace, presets: list[str]) -> None:
    """Stop with one line naming the bad value and the allowed ones, before anything trains."""
    for preset in presets:
        try:
            if args.space == "nb201":
                nb201_evaluator(preset, args)  # builds no network and loads no data: checks the values
            else:
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
    if args.archs and args.top != 1:
        parser.error("--archs and --top exclude each other: the file names the cells")
    if args.archs:
        try:
            if len(read_archs(args.archs)) < 2:
                parser.error(f"--archs {args.archs}: Kendall's tau needs at least 2 cells")
        except OSError as exc:
            parser.error(f"--archs {args.archs}: {exc.strerror}")
        except ValueError as exc:
            parser.error(str(exc))
    if not 0 < args.top <= 1 or args.cells > math.ceil(args.top * NUM_CELLS):
        parser.error(f"--top must be in (0, 1] and hold at least --cells={args.cells} cells, got {args.top}")


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
        "--top",
        type=float,
        default=1.0,
        help="draw the NB201 cells from this best fraction of the table by 200-epoch test accuracy "
        "(0.1: the top decile, where a good search's candidates lie; 1: the whole space)",
    )
    parser.add_argument(
        "--archs",
        default=None,
        help="NB201: train the cells listed in this file (an architecture string a line), not a sample",
    )
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
    check_args(parser, args, presets)
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
