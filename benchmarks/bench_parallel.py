"""Parallel child training, side by side in one run.

1. Scaling on this machine: the same architectures trained (same seeds) by
   - one process using every core's torch threads (what a plain run does),
   - one process with one core's share of threads,
   - ``PoolBackend`` with 2 workers, the cores divided between them,
   as architectures per hour, with the ratios (target: 2 workers >= 1.6x one process).
2. Ray's overhead per child: a child that costs nothing (an evaluator that returns at once)
   evaluated inline (``LocalBackend``) and as a Ray task on a local instance (``RayBackend``),
   one at a time and all in flight (target: < 50 ms per child); then the same smoke children
   trained inline and on Ray, one at a time.

Workers are warmed up first (process start, imports, CIFAR-10 load): the figures are steady-state.
The load average is printed before and after: other processes on the machine skew the scaling.

Run: ``NAS_ENV_DATA=../shared/data python benchmarks/bench_parallel.py [--fidelity smoke|proxy]``.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
import torch

from nas_env.backends import LocalBackend, PoolBackend
from nas_env.backends.base import Backend
from nas_env.backends.threads import available_cpus
from nas_env.evaluation import child_seed
from nas_env.evaluators.base import Evaluator
from nas_env.evaluators.cifar import CifarTrainingEvaluator
from nas_env.records import EvalResult
from nas_env.search_spaces.cnn import CnnSearchSpace


class NullEvaluator(Evaluator):
    """Costs nothing: what is left of a child's wall time is the backend's overhead."""

    metric_names = ("val_accuracy",)

    @property
    def fingerprint(self) -> str:
        return "null"

    def evaluate(self, arch: Any, seed: int) -> EvalResult:
        return EvalResult("ok", {"val_accuracy": 0.5}, seed=seed)


def _burn(n: int) -> float:
    start = time.perf_counter()
    x = 0
    for i in range(n):
        x += i * i
    return time.perf_counter() - start


def free_cores() -> float:
    """Speed-up of 2 pure-Python processes over 1 (2.0: two idle cores; 1.0: the machine is busy)."""
    import multiprocessing as mp

    n = 5_000_000
    one = _burn(n)
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_burn, [10, 10])
        start = time.perf_counter()
        pool.map(_burn, [n, n])
        both = time.perf_counter() - start
    return 2 * one / both


def random_archs(n: int, num_layers: int, seed: int) -> list[Any]:
    space = CnnSearchSpace(num_layers=num_layers, max_layers=num_layers)
    rng = np.random.default_rng(seed)
    return [space.decode(space.sample(rng)) for _ in range(n)]


def timed_map(backend: Backend, archs: list[Any]) -> tuple[float, list[EvalResult]]:
    start = time.perf_counter()
    done = backend.map([(a, child_seed(0, a.to_str())) for a in archs])
    return time.perf_counter() - start, [c.result for c in done]


def timed_one_by_one(backend: Backend, archs: list[Any]) -> float:
    start = time.perf_counter()
    for a in archs:
        backend.evaluate(a, 0)
    return time.perf_counter() - start


def scaling(args: argparse.Namespace) -> None:
    cores = available_cpus()
    evaluator = CifarTrainingEvaluator(args.fidelity, device="cpu", download=False)
    archs = random_archs(args.num_archs, args.num_layers, seed=1)
    local = LocalBackend(evaluator)
    timed_map(local, random_archs(1, args.num_layers, seed=2))  # load CIFAR-10 here
    with PoolBackend(evaluator, num_workers=2) as pool:
        timed_map(pool, random_archs(4, args.num_layers, seed=2))  # start both workers, load the data
        settings = [
            (f"1 process, {cores} threads", local, cores),
            ("1 process, 1 thread", local, 1),
            (f"pool, 2 workers x {pool.num_threads} thread(s)", pool, cores),
        ]
        best: dict[str, tuple[float, list[EvalResult]]] = {}
        for _ in range(args.repeats):  # interleaved; the fastest repeat is the least disturbed one
            for label, backend, threads in settings:
                torch.set_num_threads(threads)
                seconds, results = timed_map(backend, archs)
                if label not in best or seconds < best[label][0]:
                    best[label] = (seconds, results)
    rows = [(label, *best[label]) for label, _, _ in settings]
    same = [r.metrics for r in rows[1][2]] == [r.metrics for r in rows[2][2]]  # same threads: same numbers
    print(
        f"\n== scaling: {len(archs)} x {args.num_layers}-layer children, fidelity {args.fidelity!r}, "
        f"best of {args.repeats} =="
    )
    print(f"{'setting':34s} {'s/child':>8s} {'archs/hour':>11s} {'vs row 1':>9s}")
    for label, seconds, _ in rows:
        per = seconds / len(archs)
        print(f"{label:34s} {per:8.2f} {3600 / per:11.0f} {rows[0][1] / seconds:8.2f}x")
    print(f"2 workers vs 1 process with all {cores} threads: {rows[0][1] / rows[2][1]:.2f}x (target >= 1.6x)")
    print(f"2 workers vs 1 process with 1 thread: {rows[1][1] / rows[2][1]:.2f}x (ideal 2x)")
    print(f"same rewards from 1 thread inline and from the 2 workers: {same}")


def ray_overhead(args: argparse.Namespace) -> None:
    import ray

    from nas_env.backends.ray import RayBackend

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        archs = random_archs(args.num_null, 3, seed=3)
        local, remote = LocalBackend(NullEvaluator()), RayBackend(NullEvaluator())
        timed_map(remote, archs[:40])  # start the workers Ray keeps for queued tasks
        timed_one_by_one(remote, archs[:20])
        rows = []
        for label, fn in (
            ("one at a time", timed_one_by_one),
            ("all in flight", lambda b, a: timed_map(b, a)[0]),
        ):
            t_local, t_ray = fn(local, archs), fn(remote, archs)
            rows.append((label, 1000 * t_local / len(archs), 1000 * t_ray / len(archs)))
        print(
            f"\n== Ray overhead per child: {len(archs)} children that cost nothing, local instance, 2 CPUs =="
        )
        print(f"{'mode':16s} {'local ms':>9s} {'ray ms':>8s} {'overhead ms':>12s}")
        for label, t_local, t_ray in rows:
            print(f"{label:16s} {t_local:9.3f} {t_ray:8.3f} {t_ray - t_local:12.3f}")
        print(f"overhead one at a time: {rows[0][2] - rows[0][1]:.1f} ms per child (target < 50 ms)")

        torch.set_num_threads(1)
        evaluator = CifarTrainingEvaluator(args.fidelity, device="cpu", download=False)
        children = random_archs(args.num_ray_children, args.num_layers, seed=4)
        trained = RayBackend(evaluator, num_cpus=1)
        timed_map(trained, random_archs(4, args.num_layers, seed=5))  # load CIFAR-10 in both workers
        inline = LocalBackend(evaluator)
        timed_one_by_one(inline, random_archs(1, args.num_layers, seed=5))
        t_local = timed_one_by_one(inline, children) / len(children)
        t_ray = timed_one_by_one(trained, children) / len(children)
        print(f"\n== {len(children)} {args.fidelity} children, one at a time, 1 thread each ==")
        diff = 1000 * (t_ray - t_local)
        print(f"local {t_local:.3f} s/child, ray {t_ray:.3f} s/child, difference {diff:+.0f} ms")
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fidelity", default="smoke", help="smoke or proxy")
    parser.add_argument("--num-archs", type=int, default=8, help="children per setting in the scaling figure")
    parser.add_argument("--num-layers", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats of the scaling figure")
    parser.add_argument("--num-null", type=int, default=200, help="no-cost children for the Ray overhead")
    parser.add_argument(
        "--num-ray-children", type=int, default=4, help="real children for the Ray comparison"
    )
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--skip-scaling", action="store_true")
    args = parser.parse_args()
    print(
        f"load average before: {os.getloadavg()[0]:.2f} on {available_cpus()} cores;"
        f" 2-process speed-up of a pure-Python loop: {free_cores():.2f}x (2.0 = two idle cores)"
    )
    if not args.skip_scaling:
        scaling(args)
    if not args.skip_ray:
        ray_overhead(args)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}; 2-process speed-up now: {free_cores():.2f}x")


if __name__ == "__main__":
    main()
