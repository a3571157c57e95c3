"""Rank quality and cost of the zero-cost proxies (nas_env.zero_cost), printed side by side.

- ``nb201``: ``--cells`` cells drawn uniformly without replacement (``--seed``) from NAS-Bench-201's
  15,625; every single score of each cell's untrained network (the env's trained-mode network,
  weights seeded by ``--weight-seed``) against the table's 200-epoch test accuracy. The sample is
  split in two halves: ensembles are chosen on the first (``design``) and reported on the second
  (``held-out``), so the held-out figure is honest.
- ``cnn``: the ``--children`` random 6-layer children bench_fidelity trains (CnnSearchSpace,
  NumPy ``--seed``), against the ``proxy`` rewards found in ``--fidelity-store`` (if any).

Scores are kept in a SQLite store (``--store``): a killed run resumes where it stopped. Seconds per
child are timed afterwards, score by score, on ``--time-cells`` cells of the sample (one
evaluation of each score alone, as a reward would run it).

    python benchmarks/bench_zero_cost.py --space nb201 --cells 2000 --threads 1
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from _fidelity_ptb import ptb_sample
from _fidelity_runs import arch_name
from bench_fidelity import cnn_sample

from nas_env import zero_cost as zc
from nas_env.evaluators.tabular import find_nb201_table, load_nb201_table
from nas_env.evaluators.zero_cost import ZeroCostEvaluator
from nas_env.ranking import kendall_tau, rank_average, rankdata
from nas_env.search_spaces.nb201 import NUM_CELLS, NB201Architecture
from nas_env.store import ResultsStore

TARGET = "cifar10_test_acc_200ep"
PTB = ("params", "snip", "grad_norm")
"""The scores defined for PTB's language models."""
CANDIDATES: tuple[tuple[str, ...], ...] = (
    ("live_params", "jacob_cov"),
    ("live_params", "naswot"),
    ("live_params", "synflow"),
    ("naswot", "synflow"),
    ("live_params", "naswot", "synflow"),
    ("live_params", "naswot", "jacob_cov"),
    ("live_params", "naswot", "snip"),
    ("synflow", "jacob_cov", "snip"),
    ("live_params", "naswot", "synflow", "jacob_cov"),
)
"""Ensembles tried on the design half (equal weights), as rank averages and as per-child scaled logs."""


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman's rho: Pearson's correlation of the ranks."""
    return float(np.corrcoef(rankdata(x), rankdata(y))[0, 1])


def log_ensemble(values: dict[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """:func:`nas_env.zero_cost.ensemble` of ``names`` applied to every cell (per-cell, no population)."""
    weights = dict.fromkeys(names, 1.0)
    n = len(next(iter(values.values())))
    return np.array([zc.ensemble({k: float(values[k][i]) for k in names}, weights) for i in range(n)])


def score_all(
    evaluator: ZeroCostEvaluator, store: ResultsStore, archs: Sequence[Any], seed: int, label: str
) -> dict[str, np.ndarray]:
    """Every member score of ``archs``, from the store or computed now (stored as each finishes)."""
    key = f"{evaluator.fingerprint}:s{seed}"
    rows = []
    start, fresh = time.perf_counter(), 0
    for n, arch in enumerate(archs, 1):
        found = store.lookup(arch_name(arch), key)
        if found is None:
            result = evaluator.evaluate(arch, seed)
            if result.status != "ok":
                raise SystemExit(f"{arch_name(arch)} failed: {result.error}")
            store.add(arch_name(arch), key, result, result.metrics["zero_cost"])
            fresh += 1
        else:
            result = found[0]
        rows.append(result.metrics)
        if fresh and n % 100 == 0:
            rate = (time.perf_counter() - start) / fresh
            print(f"  [{label}] {n}/{len(archs)} scored ({fresh} now, {rate:.2f} s each)", flush=True)
    return {m: np.array([r[f"zc_{m}"] for r in rows], dtype=float) for m in evaluator.members}


def time_scores(evaluator: ZeroCostEvaluator, archs: Sequence[Any], names: Sequence[str]) -> dict[str, float]:
    """Seconds per child of each score alone (build, minibatch already in memory, score)."""
    x, y = evaluator.minibatch
    seconds = {}
    for name in names:
        start = time.perf_counter()
        for arch in archs:
            with zc.seeded(0):
                zc.score(name, evaluator.build_model(arch), x, y)
        seconds[name] = (time.perf_counter() - start) / len(archs)
    return seconds


def nb201_section(args: argparse.Namespace, store: ResultsStore) -> list[str]:
    """Tau of every score and ensemble on the design and held-out halves of the NB201 sample."""
    table = load_nb201_table(args.table or find_nb201_table(args.data_dir))
    truth_all = table.column(TARGET)
    indices = np.random.default_rng(args.seed).choice(NUM_CELLS, args.cells, replace=False)
    archs = [NB201Architecture.from_index(int(i)) for i in indices]
    # every single score in one evaluation; the key does not depend on any ensemble's definition
    evaluator = ZeroCostEvaluator(
        "nb201", "params", args.batch_size, data_dir=args.data_dir, extra_scores=tuple(args.scores)
    )
    values = score_all(evaluator, store, archs, args.weight_seed, "nb201")
    truth = truth_all[indices]
    half = args.cells // 2
    parts = {"design": slice(0, half), "held-out": slice(half, None), "all": slice(None)}
    candidates = [names for names in CANDIDATES if set(names) <= set(values)]
    ens_scores = {f"ensemble {'+'.join(names)}": log_ensemble(values, names) for names in candidates}
    reward = set(zc.components(args.zero_cost)) <= set(values)
    timed = time_scores(evaluator, archs[: args.time_cells], [*values, *([args.zero_cost] if reward else [])])
    lines = [
        f"NB201: {args.cells} cells drawn uniformly without replacement (NumPy seed {args.seed}); "
        f"design = first {half}, held-out = the other {args.cells - half}; truth: {TARGET}",
        f"network {evaluator.network} (channels, cells per stage); minibatch {args.batch_size} CIFAR-10 "
        f"training images (seed 0); weights seed {args.weight_seed}; "
        f"seconds per child on {args.time_cells} cells, {torch.get_num_threads()} torch thread(s)",
        f"{'score':46s} " + " ".join(f"{p:>8s} tau" for p in parts) + "  rho all   s/child",
    ]

    def row(name: str, column: np.ndarray, secs: float | None) -> str:
        taus = " ".join(f"{kendall_tau(column[s], truth[s]):12.3f}" for s in parts.values())
        sec = f"{secs:8.3f}" if secs is not None else " " * 8
        return f"{name:46s} {taus} {spearman(column, truth):8.3f}  {sec}"

    for name in values:
        lines.append(row(name, values[name], timed.get(name)))
    for name, column in ens_scores.items():
        lines.append(row(name, column, None))
    for names in candidates:
        lines.append(row(f"rank-average {'+'.join(names)}", rank_average([values[n] for n in names]), None))
    if reward:
        label = f"{args.zero_cost} = the reward"
        lines.append(row(label, _reward(values, args), timed[args.zero_cost]))
    return lines


def cnn_section(args: argparse.Namespace, store: ResultsStore) -> list[str]:
    """Every score of bench_fidelity's random 6-layer children, and tau against their stored proxy."""
    from nas_env.evaluators.cifar import CifarTrainingEvaluator

    archs = cnn_sample(args)  # bench_fidelity's sample: its store holds their proxy rewards
    evaluator = ZeroCostEvaluator(
        "cnn", "params", args.batch_size, data_dir=args.data_dir, extra_scores=tuple(args.scores)
    )
    values = score_all(evaluator, store, archs, args.weight_seed, "cnn")
    timed = time_scores(evaluator, archs, list(values))
    proxy_key = f"{CifarTrainingEvaluator('proxy').fingerprint}:s0"
    trained = ResultsStore(args.fidelity_store) if os.path.exists(args.fidelity_store) else None
    found = [trained.lookup(a.to_str(), proxy_key) if trained is not None else None for a in archs]
    known = [i for i, f in enumerate(found) if f is not None]
    proxy = np.array([100 * found[i][0].metrics["val_accuracy"] for i in known])  # type: ignore[index]
    lines = [
        f"\nCNN space: {args.children} random 6-layer children (CnnSearchSpace, NumPy seed {args.seed}); "
        f"{len(known)} have a proxy reward (training seed 0) in {args.fidelity_store}; "
        "the long reference is not measured here",
        f"{'score':46s} {'tau vs proxy':>12s}   s/child",
    ]
    for name, column in values.items():
        tau = kendall_tau(column[known], proxy) if len(known) >= 2 else math.nan
        lines.append(f"{name:46s} {tau:12.3f}  {timed[name]:8.3f}")
    return lines


def ptb_section(args: argparse.Namespace, store: ResultsStore) -> list[str]:
    """PTB's scores of bench_fidelity's PTB sample, and tau against its stored proxy perplexities."""
    from nas_env.evaluators.ptb import PtbTrainingEvaluator
    from nas_env.training.ptb import PTB_FIDELITIES

    archs = [arch for _, arch in ptb_sample(args)]  # bench_fidelity's sample: its store holds their proxies
    evaluator = ZeroCostEvaluator("ptb", "params", args.batch_size, data_dir=args.data_dir, extra_scores=PTB)
    values = score_all(evaluator, store, archs, args.weight_seed, "ptb")
    timed = time_scores(evaluator, archs, list(values))
    key = f"{PtbTrainingEvaluator(PTB_FIDELITIES['proxy'], download=False).fingerprint}:s0"
    trained = ResultsStore(args.ptb_store) if os.path.exists(args.ptb_store) else None
    found = [trained.lookup(arch_name(a), key) if trained is not None else None for a in archs]
    known = [i for i, f in enumerate(found) if f is not None]
    ppl = np.array(
        [
            found[i][0].metrics.get("val_perplexity", math.inf) if found[i][0].status == "ok" else math.inf
            for i in known
        ]  # type: ignore[index]
    )
    lines = [
        f"\nPTB space: LSTM, NASCell, tanh RNN and {args.rnn_cells} random base-8 cells (NumPy seed "
        f"{args.seed}); {len(known)} have a proxy perplexity (training seed 0; inf: diverged) in "
        f"{args.ptb_store}; network {evaluator.network} (hidden, layers)",
        f"{'score':46s} {'tau vs -ppl':>12s}   s/child",
    ]
    for name, column in values.items():
        tau = kendall_tau(column[known], -ppl) if len(known) >= 2 else math.nan
        lines.append(f"{name:46s} {tau:12.3f}  {timed[name]:8.3f}")
    return lines


def ppo_section(args: argparse.Namespace) -> list[str]:
    """Episodes per second of SB3's PPO on NAS-CIFAR10-v0 with zero-cost rewards (fresh stores)."""
    import gymnasium as gym

    import nas_env  # noqa: F401  (registers the envs)
    from agents.base import make_agent

    lines = [
        f"\nPPO (SB3, default settings) on NAS-CIFAR10-v0 (6 layers), fidelity='zero_cost', "
        f"{args.ppo_episodes} episodes (children), results kept in memory",
        f"{'zero_cost':46s} {'episodes/s':>12s} {'best reward':>12s}",
    ]
    for name in args.ppo_scores.split(","):
        env = gym.make("NAS-CIFAR10-v0", fidelity="zero_cost", zero_cost=name, device="cpu")
        agent = make_agent("ppo", env, seed=0)
        start = time.perf_counter()
        history = agent.search(args.ppo_episodes)
        rate = len(history) / (time.perf_counter() - start)
        lines.append(f"{name:46s} {rate:12.2f} {max(e.reward for e in history):12.3f}")
        env.close()
    return lines


def _reward(values: dict[str, np.ndarray], args: argparse.Namespace) -> np.ndarray:
    names = zc.components(args.zero_cost)
    n = len(values[names[0]])
    return np.array([zc.combine(args.zero_cost, {k: float(values[k][i]) for k in names}) for i in range(n)])


def main(argv: Sequence[str] | None = None) -> None:
    """Score the samples (or read them from the store), then print the figures side by side."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--space", choices=("nb201", "cnn", "ptb", "all", "none"), default="nb201")
    parser.add_argument("--ppo-episodes", type=int, default=0, help="also time PPO on this many episodes")
    parser.add_argument(
        "--ppo-scores", default="live_params,ensemble", help="zero-cost rewards PPO is timed on"
    )
    parser.add_argument("--rnn-cells", type=int, default=12, help="random PTB cells in the sample")
    parser.add_argument(
        "--ptb-store",
        default="runs/bench_fidelity_ptb.sqlite",
        help="bench_fidelity's PTB store, read for the cells' proxy perplexities",
    )
    parser.add_argument("--children", type=int, default=12, help="CNN children in the sample")
    parser.add_argument(
        "--fidelity-store",
        default="runs/bench_fidelity.sqlite",
        help="bench_fidelity's store, read for the CNN children's proxy rewards",
    )
    parser.add_argument("--cells", type=int, default=2000, help="NB201 cells in the sample (split in halves)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the sample")
    parser.add_argument("--weight-seed", type=int, default=0, help="seeds every network's weights")
    parser.add_argument("--batch-size", type=int, default=64, help="images in the scoring minibatch")
    parser.add_argument(
        "--zero-cost", default="ensemble", help=f"the reward's score, of {list(zc.ALL_SCORES)}"
    )
    parser.add_argument(
        "--scores", default=",".join(zc.SCORES), help=f"comma-separated single scores, of {list(zc.SCORES)}"
    )
    parser.add_argument("--time-cells", type=int, default=50, help="cells timed per score")
    parser.add_argument("--table", default=None, help="NB201 table (default: $NAS_ENV_DATA/nb201/...)")
    parser.add_argument("--store", default="runs/bench_zero_cost.sqlite", help="scores kept between runs")
    parser.add_argument("--data-dir", default=None, help="data root (default: $NAS_ENV_DATA)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    try:
        zc.check_score(args.zero_cost)
    except ValueError as exc:
        parser.error(str(exc))
    args.scores = [s for s in args.scores.split(",") if s]
    for name in args.scores:
        if name not in zc.SCORES:
            parser.error(f"--scores: {name!r} is not a single score; expected some of {list(zc.SCORES)}")
    if args.cells < 4 or args.cells > NUM_CELLS:
        parser.error(f"--cells must be in 4..{NUM_CELLS}, got {args.cells}")
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    store = ResultsStore(args.store)
    lines = []
    if args.space in ("nb201", "all"):
        lines += nb201_section(args, store)
    if args.space in ("cnn", "all"):
        lines += cnn_section(args, store)
    if args.space in ("ptb", "all"):
        lines += ptb_section(args, store)
    if args.ppo_episodes:
        lines += ppo_section(args)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(f"\nwall {time.perf_counter() - start:.0f} s (stored scores are free); load average {load:.1f}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
