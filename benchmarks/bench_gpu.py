"""One GPU, many children (issue 12): step speed before/after, and 1 vs K children at once.

Synthetic data of CIFAR-10's shape (45,000 + 5,000 uint8 images, seeded), so no dataset is needed.
In one run it prints:

1. ``peak``: the bf16 matmul FLOP/s torch reaches on the device (the "share of peak" denominator).
2. ``step``: per child (the reference 6-layer 3x3x36 chain, random 6-layer children, a random
   15-layer child) the seconds of one training epoch with the landed CUDA step
   (``LANDED_CUDA``: foreach SGD, no cuDNN autotuning, 1k scoring batches) and the new one
   (``CudaTuning()``) in fp32, and the new one in bf16; GFLOP per training image (forward +
   backward, torch's FlopCounterMode); the share of the bf16 peak reached; and the
   paper-fidelity seconds of that child (50 epochs, about 50 x one epoch with its scoring pass).
3. ``concurrent``: paper-fidelity children per hour with K children training at once on the
   device (``PoolBackend(devices=[device], children_per_device=K)``), extrapolated from one-epoch
   children (a paper child is 50 epochs), for the landed step alone and the new step at each K,
   with the share of the bf16 peak and the ratio to the landed step alone.

Each child trains one warm-up pass first (CUDA context, cuDNN autotuning); pools are warmed up
with K children before they are timed.

Run on a GPU (about 4 minutes on one H100/H200):
``python benchmarks/bench_gpu.py --device cuda``.
On CPU (CI): ``python benchmarks/bench_gpu.py --device cpu --quick`` (tiny sizes, same lines).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from nas_env.backends import LocalBackend, PoolBackend
from nas_env.backends.base import Backend
from nas_env.builders.cnn import build_cnn
from nas_env.data.cifar import CifarSplits
from nas_env.evaluators.cifar import CifarTrainingEvaluator
from nas_env.search_spaces.cnn import CnnArchitecture, CnnSearchSpace
from nas_env.training.cifar import CUDA_TUNING, LANDED_CUDA, CudaTuning, train_child
from nas_env.training.recipes import Fidelity

REFERENCE = CnnArchitecture.from_str(" | ".join(["3x3:36"] + [f"3x3:36 <{i}" for i in range(5)]))
PAPER_EPOCHS = 50
TODAY_PER_HOUR = 42.0
"""Issue 12's figure: 6-layer paper-fidelity children per hour on one H200 with the landed trainer."""

_SYNTHETIC: dict[int, CifarSplits] = {}


def synthetic_cifar(seed: int = 0) -> CifarSplits:
    """Random uint8 images and labels of CIFAR-10's shape and split (cached per process)."""
    if seed not in _SYNTHETIC:
        gen = torch.Generator().manual_seed(seed)
        images = torch.randint(0, 256, (50_000, 3, 32, 32), generator=gen, dtype=torch.uint8)
        labels = torch.randint(0, 10, (50_000,), generator=gen)
        _SYNTHETIC[seed] = CifarSplits(images[:45_000], labels[:45_000], images[45_000:], labels[45_000:])
    return _SYNTHETIC[seed]


class SyntheticEvaluator(CifarTrainingEvaluator):
    """The CIFAR-10 training evaluator on :func:`synthetic_cifar` (no dataset needed)."""

    def _data(self, with_test: bool) -> CifarSplits:
        return synthetic_cifar()


@dataclass
class Sizes:
    """How much each measurement trains (full on a GPU, tiny with ``--quick``)."""

    train_images: int
    valid_images: int
    resolution: int
    random6: int
    concurrent_children: int


FULL = Sizes(train_images=45_000, valid_images=5_000, resolution=32, random6=2, concurrent_children=16)
QUICK = Sizes(train_images=128, valid_images=128, resolution=8, random6=1, concurrent_children=2)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bf16_peak(device: torch.device, quick: bool) -> float:
    """bf16 matmul FLOP/s on ``device``."""
    n, seconds = (512, 0.3) if quick or device.type == "cpu" else (8192, 1.0)
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            a @ b
        count += 10
        sync(device)
    return 2 * n**3 * count / (time.perf_counter() - start)


def flops_per_image(arch: CnnArchitecture, resolution: int) -> float:
    """Training FLOPs (forward + backward) per image at ``resolution``."""
    model = build_cnn(arch)
    x, y = torch.randn(2, 3, resolution, resolution), torch.randint(0, 10, (2,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / 2


def epoch_fidelity(sizes: Sizes, precision: str, train_images: int | None = None) -> Fidelity:
    """One epoch of ``sizes.train_images`` images, scored once (the paper's recipe otherwise)."""
    return Fidelity(
        epochs=1,
        train_images=train_images or sizes.train_images,
        valid_images=sizes.valid_images,
        reward_epochs=1,
        precision=precision,  # type: ignore[arg-type]
        resolution=sizes.resolution,
    )


def epoch_seconds(
    arch: CnnArchitecture, sizes: Sizes, precision: str, tuning: CudaTuning, device: torch.device
) -> float:
    """Seconds of one epoch (with its scoring pass) of ``arch``, after a short warm-up on CUDA."""
    data = synthetic_cifar()
    if device.type == "cuda":  # CUDA context, cuDNN autotuning for every shape (full + last batch)
        warm = 4 * 128 + sizes.train_images % 128
        train_child(
            build_cnn(arch), data, epoch_fidelity(sizes, precision, warm), 0, device, cuda_tuning=tuning
        )
    torch.manual_seed(0)
    model = build_cnn(arch)
    sync(device)
    start = time.perf_counter()
    train_child(model, data, epoch_fidelity(sizes, precision), 0, device, cuda_tuning=tuning)
    sync(device)
    return time.perf_counter() - start


def step_section(
    children: list[tuple[str, CnnArchitecture]], sizes: Sizes, device: torch.device, peak: float
) -> None:
    settings = [
        ("landed fp32", "fp32", LANDED_CUDA),
        ("new fp32", "fp32", CUDA_TUNING),
        ("new bf16", "bf16", CUDA_TUNING),
    ]
    print(
        f"\n== step: one epoch of {sizes.train_images:,} images at {sizes.resolution}x{sizes.resolution} =="
    )
    print(
        f"{'child':22s} {'GFLOP/img':>9s} "
        + " ".join(f"{s[0]:>12s}" for s in settings)
        + f" {'new/landed':>10s} {'peak share':>10s} {'paper child s':>13s}"
    )
    for name, arch in children:
        flops = flops_per_image(arch, sizes.resolution)
        secs = [epoch_seconds(arch, sizes, precision, tuning, device) for _, precision, tuning in settings]
        best = min(secs[1:])
        share = flops * sizes.train_images / best / peak
        print(
            f"step {name:17s} {flops / 1e9:9.2f} "
            + " ".join(f"{s:10.2f} s" for s in secs)
            + f" {secs[0] / secs[1]:9.2f}x {100 * share:9.1f}% {PAPER_EPOCHS * best:12.0f}"
        )
    print(f"paper child s = {PAPER_EPOCHS} x the faster new epoch (each epoch scored once)")
    if device.type == "cpu":
        print(
            "on cpu the landed and new steps are the same loop (CudaTuning is CUDA-only): new/landed is noise"
        )


def timed_children(backend: Backend, archs: list[CnnArchitecture]) -> float:
    start = time.perf_counter()
    done = backend.map([(a, i) for i, a in enumerate(archs)])
    bad = [c.result.error for c in done if c.result.status != "ok"]
    if bad:
        raise RuntimeError(f"children failed: {bad}")
    return time.perf_counter() - start


def concurrent_section(
    archs: list[CnnArchitecture],
    warmups: list[CnnArchitecture],
    ks: list[int],
    sizes: Sizes,
    device: torch.device,
    peak: float,
) -> None:
    precision = "fp32"
    fidelity = epoch_fidelity(sizes, precision)
    flops = sum(flops_per_image(a, sizes.resolution) for a in archs) * sizes.train_images
    print(
        f"\n== concurrent: {len(archs)} random 6-layer children, one epoch each, {precision}, on {device} "
        f"(paper children/hour = 3600 x children / ({PAPER_EPOCHS} x wall s)) =="
    )
    print(
        f"{'setting':28s} {'wall s':>8s} {'paper children/h':>17s} {'peak share':>10s} {'vs landed K=1':>14s}"
    )
    rows: list[tuple[str, float]] = []
    for k, tuning in [(1, LANDED_CUDA)] + [(k, CUDA_TUNING) for k in ks]:
        label = f"{'landed' if tuning is LANDED_CUDA else 'new'} step, K={k}"
        evaluator = SyntheticEvaluator(fidelity, device=device)
        evaluator.cuda_tuning = tuning
        backend: Backend
        if k == 1:
            backend = LocalBackend(evaluator)
        else:
            backend = PoolBackend(evaluator, devices=[str(device)], children_per_device=k)
        with backend:
            timed_children(backend, warmups[: max(k, 1)])  # start workers, CUDA, data, cuDNN
            wall = timed_children(backend, archs)
        per_hour = 3600 * len(archs) / (PAPER_EPOCHS * wall)
        rows.append((label, per_hour))
        print(
            f"concurrent {label:17s} {wall:8.2f} {per_hour:17.1f} {100 * flops / wall / peak:9.1f}% "
            f"{per_hour / rows[0][1]:13.2f}x"
        )
    best_label, best = max(rows, key=lambda r: r[1])
    versus = f"{best / rows[0][1]:.2f}x the landed step alone here"
    if device.type == "cuda":
        today = f"issue 12's {TODAY_PER_HOUR:.0f}/h on an H200"
        versus += f", {best / TODAY_PER_HOUR:.2f}x {today} (target 5x, goal 10x)"
    print(f"children/hour best: {best_label}: {best:.1f} paper 6-layer children/h = {versus}")


def main(argv: list[str] | None = None) -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", help="cuda, cuda:1, cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs (CI)")
    parser.add_argument(
        "--ks", default=None, help="children per device to try, e.g. 2,4,8 (default 2,4,8; quick: 2)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the random children")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here (try --device cpu --quick)")
    sizes = QUICK if args.quick else FULL
    ks = [int(k) for k in (args.ks or ("2" if args.quick else "2,4,8")).split(",")]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device: {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, quick={args.quick}"
    )
    peak = bf16_peak(device, args.quick)
    print(f"peak: bf16 matmul {peak / 1e12:.3f} TFLOP/s measured on {device}")
    rng = np.random.default_rng(args.seed)
    six, fifteen = CnnSearchSpace(num_layers=6, max_layers=6), CnnSearchSpace(num_layers=15, max_layers=15)
    children = [("reference 6-layer", REFERENCE)]
    children += [(f"random 6-layer #{i}", six.decode(six.sample(rng))) for i in range(sizes.random6)]
    children.append(("random 15-layer", fifteen.decode(fifteen.sample(rng))))
    step_section(children, sizes, device, peak)
    archs = [six.decode(six.sample(rng)) for _ in range(sizes.concurrent_children)]
    warmups = [six.decode(six.sample(rng)) for _ in range(max(ks))]
    concurrent_section(archs, warmups, ks, sizes, device, peak)


if __name__ == "__main__":
    main()
