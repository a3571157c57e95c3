"""Train and score a CIFAR-10 child network.

Fast by construction: images stay in memory as uint8 tensors; cropping, flipping and
normalisation run batched in torch (no per-image Python); the model runs channels_last; scoring
uses ``torch.inference_mode``; on CUDA the data lives on the device and ``precision="bf16"``
autocasts (on CPU, bf16 uses AMX where present).

On CUDA, :class:`CudaTuning` adds what only pays there: a fused optimizer step, cuDNN autotuning
and larger scoring batches. The training loop never waits for the device inside an epoch (the
loss is summed on the device and read once per epoch; scoring counts correct answers on the
device and reads them once). CPU training ignores :class:`CudaTuning` and is unchanged.
CUDA graphs and ``torch.compile`` are not used: every child is a new network, so each would
compile (tens of seconds) for a child that trains in about a minute.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from nas_env.data.cifar import MEAN, STD, CifarSplits
from nas_env.training.recipes import Fidelity

PAD = 4
"""Random-crop padding in pixels at 32x32 (the standard CIFAR augmentation); scaled with resolution."""


def downsample(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 NCHW images average-pooled to ``resolution`` (a divisor of their side), still uint8."""
    factor = x.shape[-1] // resolution
    if factor == 1:
        return x
    return F.avg_pool2d(x.float(), factor).round_().to(torch.uint8)


@dataclass
class TrainReport:
    """What training one child produced."""

    val_accuracies: list[float] = field(default_factory=list)
    """Validation accuracy after each of the last ``reward_epochs`` epochs (the only ones scored)."""
    train_loss: float = float("nan")
    """Mean training loss of the last epoch."""
    seconds: float = 0.0
    """Wall-clock seconds of training and scoring."""
    test_accuracy: float | None = None
    """Test accuracy, only when a test set was given (retraining)."""

    def reward_accuracy(self, last: int) -> float:
        """The paper's accuracy signal: the best validation accuracy over the last ``last`` epochs."""
        return max(self.val_accuracies[-last:])


class BatchAugment:
    """Batched random crop (zero padding ``PAD``) + horizontal flip + normalisation on uint8 NCHW input."""

    def __init__(self, device: torch.device, augment: bool, pad: int = PAD) -> None:
        """Prepare normalisation constants on ``device``; crops pad by ``pad`` pixels."""
        self.augment = augment
        self.pad = pad
        self.mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255
        self.inv_std = 1 / (torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255)

    def __call__(self, x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        """Return a float32 channels_last batch, augmented when enabled and ``gen`` is given."""
        x = (x.float() - self.mean) * self.inv_std  # padding after normalising pads with the mean
        if self.augment and gen is not None:
            n, _, h, w = x.shape
            pad = self.pad
            padded = F.pad(x, (pad, pad, pad, pad))
            dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=gen.device).to(x.device)
            dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=gen.device).to(x.device)
            rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
            cols = dx[:, None] + torch.arange(w, device=x.device)
            flip = torch.rand(n, generator=gen, device=gen.device).to(x.device) < 0.5
            cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
            batch = torch.arange(n, device=x.device)[:, None, None, None]
            chan = torch.arange(3, device=x.device)[None, :, None, None]
            x = padded[batch, chan, rows, cols]
        return x.contiguous(memory_format=torch.channels_last)


EVAL_BATCH = 1000
"""Images per scoring batch on CPU (no gradients: large batches amortise per-op overhead)."""


@dataclass(frozen=True)
class CudaTuning:
    """Speed settings used only when a child trains on CUDA; CPU training ignores them.

    None changes the recipe (:class:`~nas_env.training.recipes.Fidelity`), so results keep their
    cache keys. On CUDA a seed gives the same child only up to the last bits of floating point
    unless ``deterministic=True``: cuDNN's default convolution algorithms (also before these
    settings) may accumulate in a different order from run to run.
    """

    fused_optimizer: bool = True
    """SGD updates every parameter in one fused kernel (a handful of kernels per step otherwise)."""
    cudnn_benchmark: bool = True
    """cuDNN times its convolution algorithms once per shape and keeps the fastest."""
    deterministic: bool = False
    """Deterministic cuDNN algorithms only and no autotuning: same seed, same bits; slower."""
    eval_batch: int = 2500
    """Images per scoring batch (the 5k validation split in two passes; larger batches save little,
    as a paper child scores only 5 times, and risk running out of a shared GPU's memory)."""

    def __post_init__(self) -> None:
        """Validate ``eval_batch``."""
        if isinstance(self.eval_batch, bool) or not isinstance(self.eval_batch, int) or self.eval_batch < 1:
            raise ValueError(f"CudaTuning.eval_batch={self.eval_batch!r} must be a positive integer")

    @contextmanager
    def backend_flags(self) -> Iterator[None]:
        """Set cuDNN's autotuning and determinism for one child; the caller's flags come back after."""
        cudnn = torch.backends.cudnn
        saved = cudnn.benchmark, cudnn.deterministic
        cudnn.benchmark = self.cudnn_benchmark and not self.deterministic
        cudnn.deterministic = self.deterministic
        try:
            yield
        finally:
            cudnn.benchmark, cudnn.deterministic = saved


CUDA_TUNING = CudaTuning()
"""The default: fused SGD, cuDNN autotuning, 2.5k-image scoring batches."""
LANDED_CUDA = CudaTuning(fused_optimizer=False, cudnn_benchmark=False, eval_batch=EVAL_BATCH)
"""The CUDA step as it was before :class:`CudaTuning` (``benchmarks/bench_gpu.py`` compares)."""


def _autocast(device: torch.device, precision: str) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@torch.inference_mode()
def evaluate_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, prep: BatchAugment, batch_size: int, precision: str
) -> float:
    """Top-1 accuracy of ``model`` on uint8 images ``x`` with labels ``y``."""
    model.eval()
    device = next(model.parameters()).device
    correct = torch.zeros((), dtype=torch.int64, device=device)  # read once: no sync per batch
    for start in range(0, len(x), batch_size):
        xb = prep(x[start : start + batch_size].to(device, non_blocking=True), None)
        with _autocast(device, precision):
            logits = model(xb)
        correct += (logits.argmax(1) == y[start : start + batch_size].to(device)).sum()
    return int(correct) / len(x)


def train_child(
    model: nn.Module,
    data: CifarSplits,
    fidelity: Fidelity,
    seed: int,
    device: torch.device | str = "cpu",
    with_test: bool = False,
    cuda_tuning: CudaTuning = CUDA_TUNING,
) -> TrainReport:
    """Train ``model`` on the first ``fidelity.train_images`` training images and score it.

    Images are average-pooled to ``fidelity.resolution`` first. The validation accuracy is
    measured after each of the last ``fidelity.reward_epochs`` epochs (the only ones the reward
    uses; scoring earlier epochs would only cost time). A ``precision="auto"`` that reaches here
    is resolved from the CPU's flags (:meth:`Fidelity.resolved`); evaluators pass a precision
    already chosen by a timing. The
    order of minibatches, the augmentation and the weights (when built under the same seed) are
    all drawn from ``seed``, so the same seed gives the same report on the same machine.

    Args:
        model: A freshly built child.
        data: CIFAR-10 splits (uint8).
        fidelity: The recipe.
        seed: Seeds the minibatch order and the augmentation.
        device: Where to train.
        with_test: Also score the test set after training (retraining only).
        cuda_tuning: Speed settings used when ``device`` is CUDA (ignored on CPU).

    Raises:
        FloatingPointError: The training loss became NaN or infinite.
    """
    device = torch.device(device)
    tuning = cuda_tuning if device.type == "cuda" else None
    with tuning.backend_flags() if tuning is not None else nullcontext():
        return _train(model, data, fidelity.resolved(device), seed, device, with_test, tuning)


def _train(
    model: nn.Module,
    data: CifarSplits,
    fidelity: Fidelity,
    seed: int,
    device: torch.device,
    with_test: bool,
    tuning: CudaTuning | None,
) -> TrainReport:
    """The body of :func:`train_child`; ``tuning`` is ``None`` off CUDA (CPU: the landed loop)."""
    start = time.perf_counter()
    model = model.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    eval_batch = EVAL_BATCH if tuning is None else tuning.eval_batch
    res = fidelity.resolution
    train_x = downsample(data.train_x[: fidelity.train_images].to(device), res)
    train_y = data.train_y[: fidelity.train_images].to(device)
    valid_x = downsample(data.valid_x[: fidelity.valid_images].to(device), res)
    valid_y = data.valid_y[: fidelity.valid_images].to(device)
    prep = BatchAugment(device, fidelity.augment, pad=PAD * res // 32)
    gen = torch.Generator(device=device if device.type == "cuda" else "cpu").manual_seed(seed)
    opt = torch.optim.SGD(
        model.parameters(),
        lr=fidelity.lr,
        momentum=fidelity.momentum,
        weight_decay=fidelity.weight_decay,
        nesterov=fidelity.momentum > 0,
        fused=True if tuning is not None and tuning.fused_optimizer else None,
    )
    n = len(train_x)
    steps_per_epoch = math.ceil(n / fidelity.batch_size)
    total_steps = steps_per_epoch * fidelity.epochs
    report = TrainReport()
    step = 0
    for epoch in range(fidelity.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen, device=gen.device).to(device)
        loss_sum = torch.zeros((), device=device)
        for b in range(steps_per_epoch):
            if fidelity.lr_schedule == "cosine":
                for group in opt.param_groups:
                    group["lr"] = 0.5 * fidelity.lr * (1 + math.cos(math.pi * step / total_steps))
            idx = perm[b * fidelity.batch_size : (b + 1) * fidelity.batch_size]
            xb = prep(train_x[idx], gen)
            with _autocast(device, fidelity.precision):
                loss = F.cross_entropy(model(xb), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
            step += 1
        report.train_loss = float(loss_sum) / steps_per_epoch
        if not math.isfinite(report.train_loss):
            raise FloatingPointError(f"training loss is {report.train_loss} after epoch {epoch}")
        if epoch >= fidelity.epochs - fidelity.reward_epochs:
            report.val_accuracies.append(
                evaluate_accuracy(model, valid_x, valid_y, prep, eval_batch, fidelity.precision)
            )
    if with_test:
        if data.test_x is None or data.test_y is None:
            raise ValueError("with_test=True needs CIFAR-10 loaded with its test set")
        test_x = downsample(data.test_x.to(device), res)
        report.test_accuracy = evaluate_accuracy(
            model, test_x, data.test_y.to(device), prep, eval_batch, fidelity.precision
        )
    report.seconds = time.perf_counter() - start
    return report


SCORING_SHARE = 1 / 3
"""Cost of scoring one image (a forward pass) relative to a training step on it (forward + backward)."""


def measure_seconds_per_child(
    model: nn.Module,
    fidelity: Fidelity,
    device: torch.device | str = "cpu",
    steps: int = 3,
    batch: int = 64,
    time_box: float | None = None,
) -> float:
    """Estimate the seconds ``train_child`` takes for ``model`` at ``fidelity`` by timing a few steps.

    Trains ``model`` (a throwaway) for one warm-up step and then ``steps`` timed steps on random
    batches of ``batch`` images (at most the recipe's batch size) at the recipe's resolution and
    precision, and scales the time per image to the images the recipe trains on, plus its scoring
    passes (a forward pass counted as :data:`SCORING_SHARE` of a training step). Time per image
    is nearly flat in the batch size for these networks, so small batches time them cheaply.

    Args:
        model: A freshly built child (trained here, then thrown away).
        fidelity: The recipe to estimate.
        device: Where to time.
        steps: Timed steps at most.
        batch: Images per timed step (capped at ``fidelity.batch_size``).
        time_box: With a value, stop after the first timed step that ends this many seconds after
            the warm-up (so that a slow child costs two steps, a light one ``steps + 1``).

    Returns:
        The estimated seconds of training and scoring one such child.
    """
    device = torch.device(device)
    fidelity = fidelity.resolved(device)
    model = model.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=fidelity.momentum)
    res, batch = fidelity.resolution, min(fidelity.batch_size, batch)
    x = torch.randn(batch, 3, res, res, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)
    model.train()
    timed = 0
    for i in range(steps + 1):
        if i == 1:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
        with _autocast(device, fidelity.precision):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        timed = i
        if i >= 1 and time_box is not None and time.perf_counter() - start >= time_box:
            break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    per_image = (time.perf_counter() - start) / (timed * batch)
    scored = fidelity.valid_images * min(fidelity.reward_epochs, fidelity.epochs)
    return per_image * (fidelity.train_images * fidelity.epochs + SCORING_SHARE * scored)
