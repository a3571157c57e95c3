"""Weight sharing (ENAS) on NAS-CIFAR10-v0: search cost, learning, ranking quality, retrained result.

One run prints, side by side:

1. **Search.** Each agent (default: ``reinforce`` and the ``random`` control) searches ``--budget``
   children with ``weight_sharing=True``: total seconds, seconds per child, the mean reward of the
   first and last 80 children (part of the rise comes from the shared weights training, which is
   why the random agent runs on the same settings: its rise is the supernet's alone).
2. **Cost.** Seconds per shared-weight step and per score (one validation minibatch), measured on
   the trained supernet.
3. **Ranking.** Kendall tau between the shared-weight accuracy (REINFORCE run's final weights,
   first 1,000 validation images) and standalone training at :data:`RETRAIN` of a seeded sample of
   random children (``random-6layer-seed{--sample-seed}``, the first ``--tau-children``).
4. **Result.** ENAS's last step: the distinct children of the REINFORCE run's last 80 are re-scored
   with the final shared weights on 1,000 validation images; the best is retrained at
   :data:`RETRAIN` and compared with the median of the first ``--retrain-random`` children of the
   sample, retrained the same way (validation and test accuracy).

Run: ``NAS_ENV_DATA=../shared/data python benchmarks/bench_weight_sharing.py --threads 1``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import nas_env  # noqa: F401 - registers the envs
from agents import make_agent
from nas_env.evaluators.cifar import CifarTrainingEvaluator
from nas_env.ranking import kendall_tau
from nas_env.search_spaces.cnn import CnnArchitecture, CnnSearchSpace
from nas_env.training.recipes import FIDELITIES
from scripts._cli import parse_key_values

RETRAIN = FIDELITIES["proxy"].replace(epochs=2, train_images=4_000, valid_images=2_000, precision="fp32")
"""The fixed standalone recipe of this benchmark (:data:`RETRAIN_NAME`): 2 epochs on 4,000 training
images at 16x16, SGD-Nesterov lr 0.1 cosine, batch 128, scored on 2,000 validation images and the
10,000 test images. About a minute of one CPU core per 6-layer child."""
RETRAIN_NAME = "retrain-4k-2ep-16px"
WINDOW = 80
"""Children in the first / last window whose mean reward is compared (the issue's target)."""


def search(
    agent_name: str, env_kwargs: dict[str, Any], agent_kwargs: dict[str, Any], budget: int, seed: int
) -> Any:
    """One agent on a weight-sharing env: (env, history, wall seconds, this process's CPU seconds)."""
    env = gym.make("NAS-CIFAR10-v0", weight_sharing=True, **env_kwargs)
    agent = make_agent(agent_name, env, seed=seed, **agent_kwargs)
    start, cpu = time.perf_counter(), time.process_time()

    def progress(e: Any) -> None:
        if (e.index + 1) % 100 == 0:
            recent = np.mean([h.reward for h in agent.history[-100:]])
            print(
                f"  {agent_name} {e.index + 1}: {time.perf_counter() - start:.0f} s, "
                f"last 100 mean {recent:.4f}"
            )

    history = agent.search(budget, callback=progress)
    return env, history, time.perf_counter() - start, time.process_time() - cpu


def step_costs(env: gym.Env[Any, Any], archs: list[CnnArchitecture], steps: int = 3) -> dict[str, float]:
    """Wall and CPU seconds per shared-weight step and per score on ``archs`` (weights restored after)."""
    trainer = env.unwrapped.evaluation.evaluator.trainer  # type: ignore[attr-defined]
    saved = trainer.state_dict()
    wall, cpu = time.perf_counter(), time.process_time()
    for arch in archs:
        trainer.train(arch, steps)
    n = steps * len(archs)
    out = {"step_s": (time.perf_counter() - wall) / n, "step_cpu_s": (time.process_time() - cpu) / n}
    wall, cpu = time.perf_counter(), time.process_time()
    for arch in archs:
        trainer.score(arch)
    out |= {
        "score_s": (time.perf_counter() - wall) / len(archs),
        "score_cpu_s": (time.process_time() - cpu) / len(archs),
    }
    trainer.load_state_dict(saved)  # leave the trained weights as the search left them
    return out


def retrain(arch: CnnArchitecture, seed: int) -> dict[str, float]:
    """Standalone training at :data:`RETRAIN`: validation and test accuracy, seconds."""
    result = CifarTrainingEvaluator(RETRAIN, device="cpu").evaluate(arch, seed, with_test=True)
    if result.status != "ok":
        raise RuntimeError(f"{arch.to_str()}: {result.error}")
    return {
        "val": result.metrics["val_accuracy"],
        "test": result.metrics["test_accuracy"],
        "s": result.cost_s,
    }


def main() -> None:
    """Parse flags, run the four parts, print and save the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--agents", default="reinforce,random")
    parser.add_argument(
        "--env-kwargs", nargs="*", default=["num_layers=6", "max_layers=6", "reward='accuracy'"]
    )
    parser.add_argument(
        "--agent-kwargs", nargs="*", default=[], help="reinforce settings, e.g. learning_rate=0.005"
    )
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--tau-children", type=int, default=10)
    parser.add_argument("--retrain-random", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-retrain", action="store_true", help="stop after the search and cost parts")
    parser.add_argument("--json", default=None, help="also write every figure to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env_kwargs, agent_kwargs = parse_key_values(args.env_kwargs), parse_key_values(args.agent_kwargs)
    out: dict[str, Any] = {"env_kwargs": env_kwargs, "agent_kwargs": agent_kwargs, "threads": args.threads}
    print(
        f"threads {args.threads}, load average {os.getloadavg()[0]:.1f}; "
        f"env {env_kwargs}; reinforce {agent_kwargs}"
    )
    header = f"{'agent':>10} | {'children':>8} {'total s':>8} {'s/child':>8} {'CPU s/child':>11} |"
    print(f"{header} first {WINDOW} last {WINDOW}  gain")
    envs = {}
    for name in args.agents.split(","):
        env, history, seconds, cpu = search(
            name, env_kwargs, agent_kwargs if name == "reinforce" else {}, args.budget, args.seed
        )
        envs[name] = (env, history)
        rewards = [e.reward for e in history]
        first, last = float(np.mean(rewards[:WINDOW])), float(np.mean(rewards[-WINDOW:]))
        out[name] = {
            "seconds": seconds,
            "cpu_seconds": cpu,
            "first": first,
            "last": last,
            "steps": history[-1].info["shared_step"],
        }
        print(
            f"{name:>10} | {len(history):8d} {seconds:8.1f} {seconds / len(history):8.2f} "
            f"{cpu / len(history):11.2f} | "
            f"{first:8.4f} {last:7.4f} {last - first:+.4f}"
        )
    env, history = envs.get("reinforce", next(iter(envs.values())))
    space = CnnSearchSpace(
        num_layers=env_kwargs.get("num_layers", 6), max_layers=env_kwargs.get("max_layers", 15)
    )
    rng = np.random.default_rng(args.sample_seed)
    sample = [space.decode(space.sample(rng)) for _ in range(max(args.tau_children, args.retrain_random))]
    costs = step_costs(env, sample[:4])
    out["costs"] = costs
    print(
        f"cost per shared-weight step: {costs['step_s']:.3f} s wall, {costs['step_cpu_s']:.3f} s CPU; "
        f"per score: {costs['score_s']:.3f} s wall, {costs['score_cpu_s']:.3f} s CPU "
        f"(load {os.getloadavg()[0]:.1f})"
    )
    if args.skip_retrain:
        _write(args.json, out)
        return
    evaluator = env.unwrapped.evaluation.evaluator  # type: ignore[attr-defined]
    candidates = list(dict.fromkeys(e.arch for e in history[-WINDOW:]))
    cand_scores = evaluator.rank([CnnArchitecture.from_str(a) for a in candidates])
    best = CnnArchitecture.from_str(candidates[int(np.argmax(cand_scores))])
    shared = evaluator.rank(sample)
    standalone = [retrain(arch, args.seed) for arch in sample]
    tau_n = args.tau_children
    tau = kendall_tau(shared[:tau_n], [r["val"] for r in standalone[:tau_n]])
    out["tau"] = {"sample": f"random-6layer-seed{args.sample_seed}", "n": tau_n, "tau": tau}
    out["sample"] = [
        {"arch": a.to_str(), "shared": s, **r} for a, s, r in zip(sample, shared, standalone, strict=True)
    ]
    print(f"ranking: Kendall tau {tau:+.3f} (shared-weight accuracy vs standalone {RETRAIN_NAME}, "
          f"{tau_n} children random-6layer-seed{args.sample_seed})")  # fmt: skip
    best_run = retrain(best, args.seed)
    random_runs = standalone[: args.retrain_random]
    med_val = float(np.median([r["val"] for r in random_runs]))
    med_test = float(np.median([r["test"] for r in random_runs]))
    out["best"] = {"arch": best.to_str(), "shared": max(cand_scores), **best_run}
    out["random_median"] = {"val": med_val, "test": med_test, "n": len(random_runs)}
    print(f"result ({RETRAIN_NAME}): best of search {best.to_str()}")
    print(f"  {'':>22} {'val':>7} {'test':>7}")
    print(f"  {'best (derived)':>22} {best_run['val']:7.4f} {best_run['test']:7.4f}")
    print(f"  {f'median of {len(random_runs)} random':>22} {med_val:7.4f} {med_test:7.4f}")
    print(f"  standalone seconds per child: {np.mean([r['s'] for r in standalone]):.1f}")
    _write(args.json, out)


def _write(path: str | None, out: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
