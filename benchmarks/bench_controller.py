"""Controller cost per architecture against one non-terminal env step (issue: "bench_controller").

For the 6- and 15-layer CNN spaces of NAS-CIFAR10-v0 this measures, on CPU with one thread:

* ``batched``: the paper controller of ``agents/reinforce.py`` sampling ``--batch`` architectures
  together (one LSTM call per step) plus its share of the REINFORCE update (one teacher-forced pass,
  backward, Adam), per architecture;
* ``naive``: the same network driven one token at a time with ``torch.distributions`` for one
  architecture, keeping the graph, then backward and Adam (the straightforward implementation);
* ``env step``: one non-terminal ``env.step`` of the same env (no child training involved).

Run::

    python benchmarks/bench_controller.py [--batch 8] [--repeats 30]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from torch.distributions import Bernoulli, Categorical

import nas_env  # noqa: F401  (registers the envs)
from agents.plan import ANCHOR
from agents.reinforce import Controller, ReinforceConfig


def time_batched(controller: Controller, plan, optimizer, batch: int, repeats: int) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(0)
    sample_s = update_s = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        tokens = controller.sample(plan, batch, gen)
        t1 = time.perf_counter()
        rewards = torch.rand(batch)
        log_prob, _ = controller.log_prob(plan, torch.tensor(tokens))
        loss = -((rewards - rewards.mean()) * log_prob).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        t2 = time.perf_counter()
        sample_s += t1 - t0
        update_s += t2 - t1
    n = repeats * batch
    return 1e3 * sample_s / n, 1e3 * update_s / n


def naive_one(controller: Controller, schedule, optimizer) -> None:
    """One architecture, one token at a time, with torch.distributions and a kept graph."""
    x = torch.zeros(1, dtype=torch.long)
    state = None
    log_probs = []
    keys = []
    for spec in schedule:
        if spec.kind == ANCHOR:
            continue
        out, state = controller.lstm(controller.embedding(x)[:, None], state)
        dist = Categorical(logits=controller.heads[spec.kind](out[:, 0]))
        a = dist.sample()
        log_probs.append(dist.log_prob(a))
        x = a + controller.offsets[spec.kind]
        last = [s for s in schedule if s.layer == spec.layer and s.kind != ANCHOR][-1]
        if spec is last:
            out, state = controller.lstm(
                controller.embedding(torch.ones(1, dtype=torch.long))[:, None], state
            )
            h = out[:, 0]
            for k in keys:
                d = Bernoulli(logits=controller.v(torch.tanh(k + controller.w_curr(h))).squeeze(-1))
                log_probs.append(d.log_prob(d.sample()))
            keys.append(controller.w_prev(h))
            x = torch.ones(1, dtype=torch.long)
    loss = -torch.stack([lp.sum() for lp in log_probs]).sum() * 0.1
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def time_env_step(num_layers: int, repeats: int) -> float:
    env = gym.make("NAS-CIFAR10-v0", num_layers=num_layers, max_layers=15, fidelity="smoke")
    n_steps = len(env.unwrapped.token_schedule())
    total, count = 0.0, 0
    for r in range(repeats):
        env.reset(seed=r)
        for _ in range(n_steps - 1):  # every step but the last (which would train a child)
            t0 = time.perf_counter()
            env.step(np.int64(0))
            total += time.perf_counter() - t0
            count += 1
    return 1e3 * total / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = ReinforceConfig()
    print(f"torch {torch.__version__}, 1 CPU thread, batch {args.batch}, {args.repeats} repeats")
    header = (
        f"{'layers':>6} {'tokens':>6} | {'sample':>7} {'update':>7} {'batched':>8} | {'naive':>7} "
        f"| {'env step':>8} | {'batched/env step':>16} {'naive/batched':>13}"
    )
    print(header)
    print("-" * len(header))
    for num_layers in (6, 15):
        env = gym.make("NAS-CIFAR10-v0", num_layers=num_layers, max_layers=15, fidelity="smoke")
        schedule = env.unwrapped.token_schedule()
        vocab = {s.kind: s.num_choices for s in schedule if s.kind != ANCHOR}
        controller = Controller(vocab, cfg)
        controller.reset_parameters(cfg.init_range, torch.Generator().manual_seed(0))
        optimizer = torch.optim.Adam(controller.parameters(), lr=cfg.learning_rate)
        plan = controller.plan(schedule)
        time_batched(controller, plan, optimizer, args.batch, 3)  # warm-up
        sample_ms, update_ms = time_batched(controller, plan, optimizer, args.batch, args.repeats)
        naive_one(controller, schedule, optimizer)
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            naive_one(controller, schedule, optimizer)
        naive_ms = 1e3 * (time.perf_counter() - t0) / args.repeats
        step_ms = time_env_step(num_layers, max(3, args.repeats // 3))
        batched = sample_ms + update_ms
        print(
            f"{num_layers:>6} {len(schedule):>6} | {sample_ms:>5.2f}ms {update_ms:>5.2f}ms {batched:>6.2f}ms "
            f"| {naive_ms:>5.2f}ms | {1e3 * step_ms:>6.1f}us | {batched / step_ms:>15.1f}x "
            f"{naive_ms / batched:>12.1f}x"
        )
    print("per architecture; 'batched' = sample + share of update; env step = one non-terminal step")


if __name__ == "__main__":
    main()
