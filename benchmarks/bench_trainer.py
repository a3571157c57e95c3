"""Child-training throughput on CIFAR-10, side by side in one run.

Prints, for the reference child (6 layers, 3x3, 36 filters, chain):
- training images/s in fp32 and bf16 autocast,
- the FLOP/s it reaches divided by the fp32 matmul FLOP/s torch reaches here (target >= 0.4 on CPU),
- seconds per child at the ``smoke`` and ``proxy`` presets (reference child and random children),
- peak RSS.
With ``--ranking N`` it also trains N random 6-layer children at the proxy preset in fp32 and in
bf16 and prints the Kendall rank correlation of their accuracies (does bf16 change the ranking?).

Run: ``NAS_ENV_DATA=../shared/data python benchmarks/bench_trainer.py``.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from nas_env.builders.cnn import build_cnn
from nas_env.data.cifar import load_cifar10
from nas_env.evaluators.cifar import CifarTrainingEvaluator
from nas_env.ranking import kendall_tau
from nas_env.search_spaces.cnn import CnnArchitecture, CnnSearchSpace
from nas_env.training.cifar import BatchAugment
from nas_env.training.recipes import FIDELITIES, Fidelity

REFERENCE = CnnArchitecture.from_str(" | ".join(["3x3:36"] + [f"3x3:36 <{i}" for i in range(5)]))


def matmul_flops(n: int = 1024, seconds: float = 2.0) -> float:
    """fp32 matmul FLOP/s torch reaches on this machine."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start)


def train_step_flops(arch: CnnArchitecture, batch: int) -> float:
    """FLOPs of one training step (forward + backward) counted by torch's FlopCounterMode."""
    model = build_cnn(arch)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return float(counter.get_total_flops())


def images_per_second(arch: CnnArchitecture, precision: str, batch: int, seconds: float) -> float:
    """Training images/s of ``arch`` on real CIFAR batches (augmentation included)."""
    data = load_cifar10()
    torch.manual_seed(0)
    model = build_cnn(arch).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
    prep = BatchAugment(torch.device("cpu"), augment=True)
    gen = torch.Generator().manual_seed(0)
    step = lambda i: _step(model, opt, prep, gen, data, i, batch, precision)  # noqa: E731
    for i in range(3):
        step(i)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(count)
        count += 1
    return count * batch / (time.perf_counter() - start)


def _step(model, opt, prep, gen, data, i: int, batch: int, precision: str) -> None:
    idx = torch.arange(i * batch, (i + 1) * batch) % len(data.train_x)
    xb = prep(data.train_x[idx], gen)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = F.cross_entropy(model(xb), data.train_y[idx])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="timing window per measurement")
    parser.add_argument("--children", type=int, default=3, help="random children timed per preset")
    parser.add_argument("--ranking", type=int, default=0, help="children for the fp32-vs-bf16 ranking check")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    batch = FIDELITIES["proxy"].batch_size
    peak = matmul_flops()
    flops = train_step_flops(REFERENCE, batch) / batch
    print(
        f"fp32 matmul: {peak / 1e9:.1f} GFLOP/s; reference child: {flops / 1e6:.0f} MFLOP per training image"
    )
    for precision in ("fp32", "bf16"):
        ips = images_per_second(REFERENCE, precision, batch, args.seconds)
        print(
            f"reference child {precision}: {ips:7.1f} images/s, {ips * flops / 1e9:6.1f} GFLOP/s, "
            f"{ips * flops / peak:.2f} of fp32 matmul peak (target >= 0.4)"
        )
    space = CnnSearchSpace()
    rng = np.random.default_rng(0)
    randoms = [space.decode(space.sample(rng)) for _ in range(args.children)]
    for preset in ("smoke", "proxy"):
        evaluator = CifarTrainingEvaluator(preset, device="cpu")
        ref = evaluator.evaluate(REFERENCE, 0).cost_s
        times = [evaluator.evaluate(a, 0).cost_s for a in randoms]
        print(
            f"preset {preset:5s}: reference child {ref:6.1f} s; {len(randoms)} random 6-layer children "
            f"{np.mean(times):6.1f} s mean, {np.max(times):6.1f} s max"
        )
    if args.ranking:
        children = [space.decode(space.sample(rng)) for _ in range(args.ranking)]
        accs: dict[str, list[float]] = {}
        for precision in ("fp32", "bf16"):
            fid: Fidelity = FIDELITIES["proxy"].replace(precision=precision)
            results = [CifarTrainingEvaluator(fid, device="cpu").evaluate(a, 0) for a in children]
            accs[precision] = [r.metrics["val_accuracy"] for r in results]
            print(
                f"proxy {precision}: mean val acc {np.mean(accs[precision]):.3f}, "
                f"{np.mean([r.cost_s for r in results]):.1f} s/child"
            )
        tau = kendall_tau(accs["fp32"], accs["bf16"])
        print(f"Kendall tau fp32 vs bf16 over {args.ranking} children: {tau:.2f}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
