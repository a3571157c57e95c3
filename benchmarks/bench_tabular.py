"""Per-evaluation overhead of NAS-Bench-201-v0 in tabular mode, alone and with each search policy.

Prints, side by side: the table lookup, a whole env episode (6 steps through ``gym.make``'s
wrappers, results store included), and for each policy the CPU time of a 100-architecture search
and its cost per architecture relative to the env episode. Target (issue 4): a 100-architecture
REINFORCE search in under 1 s of CPU.

Run: ``python benchmarks/bench_tabular.py [--table PATH]``. Without ``--table`` it writes the
synthetic table of :mod:`nas_env.evaluators.nb201_synthetic` (same schema, made-up values) to a
temporary file.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import gymnasium as gym
import numpy as np
import torch

import nas_env  # noqa: F401
from agents import AGENT_NAMES, make_agent
from nas_env.evaluators.nb201_synthetic import write_synthetic_table
from nas_env.evaluators.tabular import TabularEvaluator, load_nb201_table
from nas_env.search_spaces.nb201 import NB201Architecture


def time_lookup(table: str, n: int) -> float:
    """Seconds per ``TabularEvaluator.evaluate`` call."""
    evaluator = TabularEvaluator(table)
    archs = [NB201Architecture.from_index(int(i)) for i in np.random.default_rng(0).integers(0, 15_625, n)]
    start = time.perf_counter()
    for arch in archs:
        evaluator.evaluate(arch, 0)
    return (time.perf_counter() - start) / n


def time_episodes(table: str, n: int) -> float:
    """Seconds per architecture of 6 env steps with random actions (fresh env: no cache hits at first)."""
    env = gym.make("NAS-Bench-201-v0", table_path=table)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 5, (n, 6))
    start = time.perf_counter()
    for row in actions:
        for action in row:
            env.step(np.int64(action))
        env.reset()
    return (time.perf_counter() - start) / n


def time_search(table: str, policy: str, budget: int, seed: int) -> tuple[float, float]:
    """CPU seconds to build the agent, and CPU seconds of a ``budget``-architecture search."""
    env = gym.make("NAS-Bench-201-v0", table_path=table)
    start = time.process_time()
    agent = make_agent(policy, env, seed=seed)
    built = time.process_time()
    history = agent.search(budget)
    done = time.process_time()
    assert len(history) >= budget
    env.close()
    return built - start, done - built


def main() -> None:
    """Print the figures side by side (best of ``--repeats`` for the searches)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table", default=None, help="NB201 table (default: the synthetic one)")
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--policies", default=",".join(AGENT_NAMES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        table = args.table or write_synthetic_table(tmp)
        start = time.perf_counter()
        load_nb201_table(table)
        load_s = time.perf_counter() - start
        lookup_s = time_lookup(table, 20_000)
        episode_s = time_episodes(table, 2_000)
        print(f"table parse + validation (once per process): {load_s * 1e3:8.1f} ms")
        print(f"TabularEvaluator.evaluate:                    {lookup_s * 1e6:8.2f} us")
        print(f"env episode (6 steps, gym.make wrappers):     {episode_s * 1e6:8.2f} us per architecture")
        print()
        search_col = f"{args.budget}-arch CPU s"
        print(f"{'policy':14s} {'build CPU s':>11s} {search_col:>15s} {'ms/arch':>8s} {'x env':>7s}")
        for policy in args.policies.split(","):
            runs = [time_search(table, policy, args.budget, seed) for seed in range(args.repeats)]
            build_s = min(r[0] for r in runs)
            search_s = min(r[1] for r in runs)
            per_arch = search_s / args.budget
            ratio = per_arch / episode_s
            note = "   (target < 1 s)" if policy == "reinforce" else ""
            print(f"{policy:14s} {build_s:11.3f} {search_s:15.3f} {per_arch * 1e3:8.2f} {ratio:7.1f}{note}")


if __name__ == "__main__":
    main()
