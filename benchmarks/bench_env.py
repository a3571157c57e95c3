"""Mean time of a non-terminal NAS-CIFAR10-v0 step against CartPole-v1's step, in one process.

Target (issue 2): ratio <= 1.5. Run: ``python benchmarks/bench_env.py``.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import nas_env  # noqa: F401


def time_steps(env: gym.Env, n: int, terminal_ok: bool) -> float:
    """Mean seconds per step over ``n`` steps (resetting before a terminal step if not ``terminal_ok``)."""
    env.reset(seed=0)
    steps_left = len(env.unwrapped.token_schedule()) if hasattr(env.unwrapped, "token_schedule") else None
    total = 0.0
    done = 0
    while done < n:
        if steps_left is not None and steps_left == 1 and not terminal_ok:
            env.reset()
            steps_left = len(env.unwrapped.token_schedule())
        t0 = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(0)
        total += time.perf_counter() - t0
        done += 1
        if steps_left is not None:
            steps_left -= 1
        if terminated or truncated:
            env.reset()
            if steps_left is not None:
                steps_left = len(env.unwrapped.token_schedule())
    return total / n


def main() -> None:
    """Print both step times and their ratio (best of a few repeats, to damp machine noise)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    nas = gym.make("NAS-CIFAR10-v0")
    cart = gym.make("CartPole-v1")
    nas_t, cart_t = [], []
    for _ in range(args.repeats):  # interleaved so that both see the same machine load
        nas_t.append(time_steps(nas, args.steps, terminal_ok=False))
        cart_t.append(time_steps(cart, args.steps, terminal_ok=True))
    nas_s, cart_s = float(np.min(nas_t)), float(np.min(cart_t))
    print(f"NAS-CIFAR10-v0 non-terminal step: {nas_s * 1e6:7.2f} us (gym.make wrappers included)")
    print(f"CartPole-v1 step:                 {cart_s * 1e6:7.2f} us")
    print(f"ratio NAS / CartPole:             {nas_s / cart_s:7.2f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
