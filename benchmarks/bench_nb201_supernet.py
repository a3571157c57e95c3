"""One-shot NAS-Bench-201 on a CPU: train a supernet, measure its ranking, search it, look the result up.

For each seed, one run prints:

1. **Training.** RSPS (Li & Talwalkar, UAI 2019): ``--steps`` SGD steps of the NB201 supernet
   (:mod:`nas_env.builders.nb201_supernet`), each on a uniformly random cell, learning rate cosine
   from ``--lr`` to 0 over ``--schedule-steps`` (default ``--steps``; a longer schedule stops the
   training while the rate is still up, where the supernet ranked best in docs/weight_sharing.md).
   Every ``--eval-every`` steps, the Kendall τ of the supernet's accuracy on the first
   ``--valid-images`` validation images against the table's 200-epoch test accuracy, on the
   seeded sample ``nb201-sample{--sample-seed}`` (``--cells`` cells drawn without replacement by
   ``np.random.default_rng(--sample-seed)``). The run checkpoints every ``--checkpoint-every``
   steps under ``--out`` and continues from there when started again (SIGKILL loses at most that).
2. **Ranking.** τ at the end, of the accuracy and of the loss, with both batch-norm modes:
   statistics of the scored batch (``bn_images=0``) and re-estimated on ``--bn-images`` training
   images per cell.
3. **Search.** ``NAS-Bench-201-v0`` with ``weight_sharing=True, shared_steps=0`` loads the trained
   supernet and an agent (``--agent``, default regularized evolution) searches ``--search-budget``
   cells, each scored on a random minibatch of ``--search-images`` validation images (the env's
   reward, as ENAS scores a child); or ``--agent exhaustive`` ranks all 15,625 cells on the same first
   ``--search-images`` validation images (a fixed set, so no cell wins by drawing easy images). As ENAS
   does, the distinct top ``--finalists`` are re-scored on ``--valid-images`` images and the one of
   lowest loss is returned. Its 200-epoch test accuracy and rank among the 15,625 cells come from the
   table, beside the published weight-sharing rows of NB201's Table 5.

Run: ``NAS_ENV_DATA=../shared/data python benchmarks/bench_nb201_supernet.py --steps 12000``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import nas_env  # noqa: F401 - registers the envs
from agents import AGENT_NAMES, make_agent
from nas_env.data.cifar import load_cifar10
from nas_env.errors import did_you_mean
from nas_env.evaluators.tabular import find_nb201_table, load_nb201_table
from nas_env.ranking import kendall_tau
from nas_env.search_spaces.nb201 import NUM_CELLS, NB201Architecture, NB201SearchSpace
from nas_env.training.nb201_weight_sharing import NB201SharedRecipe, NB201SharedTrainer

TRUTH = "cifar10_test_acc_200ep"
EXHAUSTIVE = "exhaustive"
PUBLISHED = {  # NB201 (ICLR 2020) Table 5, CIFAR-10 test accuracy of the cell found, after GPU-hours
    "DARTS / ENAS": 54.30,
    "SETN": 86.19,
    "RSPS": 87.66,
    "GDAS": 93.61,
    "random search (table)": 93.70,
    "optimum": 94.37,
}


def parse_args() -> argparse.Namespace:
    """Command-line settings (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1, one supernet each")
    p.add_argument("--steps", type=int, default=12000, help="RSPS steps (one random cell each)")
    p.add_argument("--lr", type=float, default=0.1, help="peak learning rate (cosine over --schedule-steps)")
    p.add_argument(
        "--schedule-steps",
        type=int,
        default=None,
        help="length of the cosine (default: --steps); longer: training stops while the rate is still up",
    )
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--resolution", type=int, default=16, choices=(32, 16, 8))
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--cells-per-stage", type=int, default=1)
    p.add_argument("--cells", type=int, default=100, help="cells in the seeded τ sample")
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--valid-images", type=int, default=1000, help="images a cell is ranked on")
    p.add_argument("--bn-images", type=int, default=500, help="images BN is re-estimated on (0: one mode)")
    p.add_argument("--eval-every", type=int, default=2000)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--keep", action="store_true", help="keep a copy of the supernet at each τ point")
    p.add_argument(
        "--agent",
        default="evolution",
        help=f"search agent on the trained supernet, or {EXHAUSTIVE!r}: rank every cell (minutes)",
    )
    p.add_argument("--search-budget", type=int, default=500, help="cells the agent scores (not exhaustive)")
    p.add_argument("--search-images", type=int, default=250, help="validation images per search score")
    p.add_argument("--finalists", type=int, default=10)
    p.add_argument("--threads", type=int, default=2, help="torch threads (the machine's free cores)")
    p.add_argument("--out", default="runs/nb201_supernet", help="checkpoints and results")
    args = p.parse_args()
    for name in (
        "steps", "cells", "valid_images", "eval_every", "checkpoint_every", "search_budget", "search_images",
        "finalists",
    ):  # fmt: skip
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')}={getattr(args, name)} must be >= 1")
    if args.agent != EXHAUSTIVE and args.agent not in AGENT_NAMES:
        p.error(
            f"--agent={args.agent!r} is not one of {[EXHAUSTIVE, *AGENT_NAMES]}."
            f"{did_you_mean(args.agent, (EXHAUSTIVE, *AGENT_NAMES))}"
        )
    if not 2 <= args.cells <= NUM_CELLS:
        p.error(f"--cells={args.cells} must be in [2, {NUM_CELLS}]")
    if args.schedule_steps is None:
        args.schedule_steps = args.steps
    if args.schedule_steps < args.steps:
        p.error(f"--schedule-steps={args.schedule_steps} must be >= --steps={args.steps}")
    return args


def recipe_of(args: argparse.Namespace, bn_images: int = 0) -> NB201SharedRecipe:
    """The supernet's recipe (``lr`` is the schedule's peak; the benchmark sets each step's rate)."""
    return NB201SharedRecipe(
        shared_steps=0,
        valid_batch=args.search_images,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        resolution=args.resolution,
        channels=args.channels,
        cells_per_stage=args.cells_per_stage,
        bn_images=bn_images,
    )


def tau(trainer: NB201SharedTrainer, cells: np.ndarray, truth: np.ndarray, images: int) -> dict[str, float]:
    """Kendall τ against ``truth`` of the supernet's accuracy and (negated) loss of ``cells``, and s/cell."""
    start = time.perf_counter()
    indices = torch.arange(images)
    scores = np.array(
        [trainer.accuracy_and_loss(NB201Architecture.from_index(int(c)), indices) for c in cells]
    )
    return {
        "tau_accuracy": kendall_tau(scores[:, 0], truth[cells]),
        "tau_loss": kendall_tau(-scores[:, 1], truth[cells]),
        "seconds_per_cell": (time.perf_counter() - start) / len(cells),
    }


def show(prefix: str, taus: dict[str, float]) -> None:
    """Print one τ measurement."""
    print(
        f"{prefix}  τ {taus['tau_accuracy']:+.3f} (accuracy)  {taus['tau_loss']:+.3f} (loss)  "
        f"{taus['seconds_per_cell']:.2f} s/cell",
        flush=True,
    )


def train(
    args: argparse.Namespace, seed: int, data: Any, cells: np.ndarray, truth: np.ndarray
) -> tuple[NB201SharedTrainer, dict[str, Any]]:
    """Train (or continue training) seed ``seed``'s supernet; return it and its log."""
    path = Path(args.out) / f"seed{seed}.pt"
    trainer = NB201SharedTrainer(NB201SearchSpace(), recipe_of(args), data, seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 201]))
    log: dict[str, Any] = {"curve": [], "train_seconds": 0.0, "schedule_steps": args.schedule_steps}
    if path.exists():
        saved = torch.load(path, weights_only=False)
        trainer.load_state_dict(saved["trainer"])
        rng.bit_generator.state = saved["rng"]
        log = saved["log"]
        if log.setdefault("schedule_steps", args.steps) != args.schedule_steps:
            raise SystemExit(
                f"{path} was trained with --schedule-steps={log['schedule_steps']}, not "
                f"{args.schedule_steps}: use its value or another --out"
            )
        print(f"seed {seed}: resumed at step {trainer.step} ({log['train_seconds']:.0f} s trained)")
    space = trainer.supernet.space
    while trainer.step < args.steps:
        start = time.perf_counter()
        stop = min(args.steps, (trainer.step // args.checkpoint_every + 1) * args.checkpoint_every)
        while trainer.step < stop:
            for group in trainer.optimizer.param_groups:
                group["lr"] = 0.5 * args.lr * (1 + math.cos(math.pi * trainer.step / args.schedule_steps))
            trainer.train(space.decode(space.sample(rng)), 1)
        log["train_seconds"] += time.perf_counter() - start
        if trainer.step % args.eval_every == 0 or trainer.step == args.steps:
            taus = tau(trainer, cells, truth, args.valid_images)
            log["curve"].append({"step": trainer.step, "train_seconds": log["train_seconds"], **taus})
            show(f"seed {seed} step {trainer.step:6d}  {log['train_seconds']:7.0f} s", taus)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"trainer": trainer.state_dict(), "rng": rng.bit_generator.state, "log": log}
        torch.save(state, path.with_suffix(".tmp"))
        os.replace(path.with_suffix(".tmp"), path)
        if args.keep and log["curve"] and log["curve"][-1]["step"] == trainer.step:
            torch.save(state, path.with_name(f"seed{seed}_step{trainer.step}.pt"))
    return trainer, log


def rank_every_cell(
    evaluator: Any, images: int, cells: list[NB201Architecture] | None = None
) -> list[NB201Architecture]:
    """``cells`` (default: all 15,625) by supernet accuracy on the first ``images`` validation images.

    Best first. The same images for every cell: scores differ only by the cells (the env's
    reward draws a new minibatch per child, which at 250 images is a noise of a few points).
    """
    cells = [NB201Architecture.from_index(i) for i in range(NUM_CELLS)] if cells is None else cells
    accuracy = evaluator.rank(cells, images=images, metric="accuracy")
    return [cells[int(i)] for i in np.argsort(-np.asarray(accuracy), kind="stable")]


def search(
    args: argparse.Namespace, seed: int, trainer: NB201SharedTrainer
) -> tuple[NB201Architecture, list[NB201Architecture], float]:
    """Search the trained supernet (``args.agent``, through the env).

    Returns:
        The returned cell (the finalist of lowest loss), the finalists (the search's best first), and
        the seconds.
    """
    start = time.perf_counter()
    env = gym.make(
        "NAS-Bench-201-v0",
        weight_sharing=True,
        shared_steps=0,
        valid_batch=args.search_images,
        shared_kwargs={
            k: v for k, v in vars(recipe_of(args)).items() if k not in ("shared_steps", "valid_batch")
        },
    )
    evaluator = env.unwrapped.evaluation.evaluator
    evaluator.load_state_dict({"seed": seed, "trainer": trainer.state_dict()})
    if args.agent == EXHAUSTIVE:
        finalists = rank_every_cell(evaluator, args.search_images)[: args.finalists]
    else:
        history = make_agent(args.agent, env, seed=seed).search(args.search_budget)
        best = sorted({e.arch for e in history}, key=lambda a: -max(e.reward for e in history if e.arch == a))
        finalists = [NB201Architecture.from_str(a) for a in best[: args.finalists]]
    losses = evaluator.rank(finalists, images=args.valid_images, metric="loss")
    env.close()
    return finalists[int(np.argmin(losses))], finalists, time.perf_counter() - start


def main() -> None:
    """Train, measure and search each seed; print the figures and write ``--out/results.json``."""
    args = parse_args()
    torch.set_num_threads(args.threads)
    truth = load_nb201_table(find_nb201_table()).column(TRUTH)
    cells = np.random.default_rng(args.sample_seed).choice(NUM_CELLS, args.cells, replace=False)
    data = load_cifar10(None)
    results = []
    for seed in range(args.seeds):
        trainer, log = train(args, seed, data, cells, truth)
        taus = {}
        for bn in sorted({0, args.bn_images}):
            trainer.recipe = recipe_of(args, bn_images=bn)
            taus[f"bn_images={bn}"] = tau(trainer, cells, truth, args.valid_images)
            show(f"seed {seed}: bn_images={bn}", taus[f"bn_images={bn}"])
        trainer.recipe = recipe_of(args)
        cell, finalists, search_s = search(args, seed, trainer)
        acc = float(truth[cell.index])
        rank = int((truth > acc).sum()) + 1
        finalist_accs = [(f.to_str(), float(truth[f.index])) for f in finalists]
        results.append(
            {
                "seed": seed,
                "cell": cell.to_str(),
                "test_acc_200ep": acc,
                "rank": rank,
                "tau": taus,
                "train_seconds": log["train_seconds"],
                "search_seconds": search_s,
                "finalists": finalist_accs,
                "curve": log["curve"],
            }
        )
        print(
            f"seed {seed}: returned {cell.to_str()}  {acc:.2f}% (rank {rank} of {NUM_CELLS}), "
            f"train {log['train_seconds']:.0f} s + search {search_s:.0f} s; the search's own first "
            f"{finalist_accs[0][1]:.2f}%, best of its {len(finalists)} finalists "
            f"{max(a for _, a in finalist_accs):.2f}%"
        )
    accs = np.array([r["test_acc_200ep"] for r in results])
    print(
        f"\none-shot RSPS supernet, {args.steps} steps (cosine over {args.schedule_steps}), "
        f"{'all cells ranked' if args.agent == EXHAUSTIVE else f'{args.agent} x {args.search_budget}'}: "
        f"{accs.mean():.2f} ± {accs.std():.2f} over {len(accs)} seed(s)"
    )
    for name, value in PUBLISHED.items():
        print(f"  {name:>22}: {value:.2f}")
    Path(args.out, "results.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
