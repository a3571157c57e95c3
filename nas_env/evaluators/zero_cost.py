"""Score architectures without training: zero-cost proxies of the untrained child network.

The child is built exactly as the env's trainer builds it (the same builder, seeded weight
initialisation), then scored by :mod:`nas_env.zero_cost` on one fixed minibatch of the env's
training data: ``batch_size`` images (or token windows) drawn with ``batch_seed`` from the
training split, never from validation or test data.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from functools import cached_property
from typing import Any

import torch
from torch import nn

from nas_env import zero_cost as zc
from nas_env.errors import check_choice, check_range
from nas_env.evaluators.base import Evaluator, resolve_device
from nas_env.records import EvalResult

SPACES = ("cnn", "nb201", "ptb")
"""The spaces a :class:`ZeroCostEvaluator` builds networks for."""
PTB_SCORES = ("params", "snip", "grad_norm")
"""Scores defined for a recurrent language model (token input: no all-ones image, no input
gradient, no ``nn.ReLU`` codes)."""
ZERO_COST_METRIC = "zero_cost"
"""Metric holding the chosen score; each member score is also reported as ``zc_<name>``."""
VERSION = 1
"""Bumped when a score's definition changes (part of the fingerprint)."""
WORST_REWARD = -100.0
"""Reward of a child whose score is not finite (nothing flows through it): below every finite
score, which :func:`nas_env.zero_cost.combine` puts on a scale of order one."""


def zero_cost_reward(result: EvalResult) -> float:
    """The zero-cost score of the untrained child (scaled-log scale; -100 when nothing flows through it).

    That is the result's ``zero_cost`` metric, or :data:`WORST_REWARD` when it is not finite.
    """
    value = float(result.metrics[ZERO_COST_METRIC])
    return value if math.isfinite(value) else WORST_REWARD


class ZeroCostEvaluator(Evaluator):
    """Scores a child by a zero-cost proxy of its untrained network (higher is better).

    A score that is not finite (a network through which no signal or gradient flows) is reported
    as ``-inf``: the worst. ``cost_s`` is the scoring time.

    Args:
        space: ``"cnn"`` (NAS-CIFAR10-v0's children), ``"nb201"`` or ``"ptb"``.
        zero_cost: A score or ensemble of :data:`nas_env.zero_cost.ALL_SCORES`.
        batch_size: Images (CNN, NB201) or token windows (PTB) in the minibatch.
        batch_seed: Seeds the minibatch's draw from the training split.
        data_dir: Root of the datasets; defaults to ``$NAS_ENV_DATA``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        download: Download the dataset (md5-checked) when it is not found.
        resolution: Image side (CIFAR's 32, or 16 / 8 average-pooled); ``None``: the resolution the
            space's ``proxy`` preset trains at (CNN 16, NB201 32). Ignored for PTB.
        network: The network the cell is built into: NB201 ``(channels, cells_per_stage)``
            (default: the ``proxy`` preset's, which the env's trained mode trains); PTB
            ``(hidden_size, num_layers)`` (default: the ``proxy`` preset's). Ignored for CNN.
        level: PTB's ``"word"`` or ``"char"`` corpus (ignored for the image spaces).
        extra_scores: Single scores also reported (as ``zc_<name>``) beside the chosen one, in
            the same passes (``benchmarks/bench_zero_cost.py`` measures them all at once).

    Raises:
        ValueError: An unknown space or score (the message lists the allowed ones), a score not
            defined for the space, or a size out of range.
    """

    def __init__(
        self,
        space: str = "nb201",
        zero_cost: str = "ensemble",
        batch_size: int = 64,
        batch_seed: int = 0,
        data_dir: str | os.PathLike[str] | None = None,
        device: str | torch.device = "auto",
        download: bool = True,
        resolution: int | None = None,
        network: tuple[int, int] | None = None,
        extra_scores: tuple[str, ...] = (),
        level: str = "word",
    ) -> None:
        """Check the arguments; the data is loaded on the first evaluation."""
        check_choice("space", space, SPACES)
        for extra in extra_scores:
            check_choice("extra_scores member", extra, zc.SCORES)
        zero_cost_members = tuple(dict.fromkeys((*zc.components(zero_cost), *extra_scores)))
        if space == "ptb":
            for member in zero_cost_members:
                check_choice(f"zero_cost member on the ptb space (of {zero_cost!r})", member, PTB_SCORES)
        check_range("batch_size", batch_size, 2, 4096)
        if resolution is None:
            resolution = _default_resolution(space)
        check_choice("resolution", resolution, (8, 16, 32))
        check_choice("level", level, ("word", "char"))
        self.space = space
        self.level = level if space == "ptb" else "word"
        self.zero_cost = zero_cost
        self.members = zero_cost_members
        self.batch_size = batch_size
        self.batch_seed = batch_seed
        self.data_dir = data_dir
        self.device = resolve_device(device)
        self.download = download
        self.resolution = resolution
        self.network = network if network is not None else _default_network(space)
        self.metric_names = (ZERO_COST_METRIC, *(f"zc_{m}" for m in self.members))

    @property
    def fingerprint(self) -> str:
        """Space, network, score (with an ensemble's weights and scales), minibatch and version."""
        weights = zc.ENSEMBLES.get(self.zero_cost, {self.zero_cost: 1.0})
        scales = sorted((m, zc.SCALES[m]) for m in weights)
        level = "" if self.level == "word" else f"-{self.level}"
        payload = (
            f"zc{VERSION}-{self.space}{level}-net{self.network}-{self.zero_cost}{sorted(weights.items())}"
            f"{scales}{sorted(self.members)}-b{self.batch_size}-s{self.batch_seed}-r{self.resolution}"
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the cached minibatch (workers draw it again: it is seeded)."""
        state = dict(self.__dict__)
        state.pop("minibatch", None)
        return state

    def check_data(self) -> None:
        """Find the dataset of the space, downloading it when allowed, without loading it."""
        if self.space == "ptb":
            from nas_env.data.ptb import find_ptb

            find_ptb(self.data_dir, self.level, download_missing=self.download)
        else:
            from nas_env.data.cifar import find_cifar10

            find_cifar10(self.data_dir, download_missing=self.download)

    @cached_property
    def minibatch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed ``(inputs, targets)`` every child is scored on, on the evaluator's device."""
        gen = torch.Generator().manual_seed(self.batch_seed)
        if self.space == "ptb":
            from nas_env.data.ptb import load_ptb

            stream = load_ptb(self.data_dir, self.level, download_missing=self.download).train
            bptt = 35
            starts = torch.randint(0, len(stream) - bptt - 1, (self.batch_size,), generator=gen)
            window = starts[None, :] + torch.arange(bptt)[:, None]  # (T, B)
            return stream[window].to(self.device), stream[window + 1].to(self.device)
        from nas_env.data.cifar import load_cifar10
        from nas_env.training.cifar import BatchAugment, downsample

        data = load_cifar10(self.data_dir, download_missing=self.download)
        idx = torch.randperm(len(data.train_x), generator=gen)[: self.batch_size]
        images = downsample(data.train_x[idx], self.resolution).to(self.device)
        x = BatchAugment(self.device, augment=False)(images, None)
        return x, data.train_y[idx].to(self.device)

    def build_model(self, arch: Any) -> nn.Module:
        """The untrained child network, built by the space's own builder."""
        if self.space == "cnn":
            from nas_env.builders.cnn import build_cnn

            return build_cnn(arch)
        if self.space == "nb201":
            from nas_env.builders.nb201 import NB201Network

            channels, cells = self.network
            return NB201Network(arch, channels=channels, cells_per_stage=cells)
        from nas_env.builders.language_model import build_language_model

        hidden, layers = self.network
        return build_language_model(arch, self._vocab_size, hidden, layers)

    @cached_property
    def _vocab_size(self) -> int:
        from nas_env.data.ptb import load_ptb

        return load_ptb(self.data_dir, self.level, download_missing=self.download).vocab_size

    def scores(self, arch: Any, seed: int) -> tuple[dict[str, float], int]:
        """Every member score of ``arch`` (``-inf`` when not finite) and its trainable parameters.

        The network's weights are initialised from ``seed``; torch's global generator is restored.
        """
        x, y = self.minibatch
        with zc.seeded(seed):
            model = self.build_model(arch).to(self.device)
            values = zc.measure(self.members, model, x, y)
        num_params = int(zc.params(model))
        return {k: v if math.isfinite(v) else -math.inf for k, v in values.items()}, num_params

    def evaluate(self, arch: Any, seed: int) -> EvalResult:
        """Build ``arch``'s network with weights seeded by ``seed`` and score it."""
        start = time.perf_counter()
        try:
            values, num_params = self.scores(arch, seed)
        except (RuntimeError, FloatingPointError) as exc:  # out of memory, overflow
            return EvalResult("failed", error=f"{type(exc).__name__}: {exc}", seed=seed)
        metrics = {ZERO_COST_METRIC: zc.combine(self.zero_cost, values)}
        metrics.update({f"zc_{k}": v for k, v in values.items()})
        return EvalResult("ok", metrics, num_params, time.perf_counter() - start, seed=seed)


ZERO_COST_FIDELITY = "zero_cost"
"""The ``fidelity=`` of the envs that scores children by a zero-cost proxy instead of training."""


def check_zero_cost_unused(zero_cost: str | None) -> None:
    """Raise the one-line error for ``zero_cost=`` given without ``fidelity="zero_cost"``."""
    if zero_cost is not None:
        raise ValueError(
            f"zero_cost={zero_cost!r} only applies with fidelity={ZERO_COST_FIDELITY!r}; "
            "remove it or set the fidelity"
        )


def _default_resolution(space: str) -> int:
    from nas_env.training.recipes import FIDELITIES, NB201_FIDELITIES

    return (NB201_FIDELITIES if space == "nb201" else FIDELITIES)["proxy"].resolution


def _default_network(space: str) -> tuple[int, int]:
    if space == "nb201":
        from nas_env.evaluators.nb201_training import NB201_NETWORKS

        return NB201_NETWORKS["proxy"]
    if space == "ptb":
        from nas_env.training.ptb import get_ptb_fidelity

        f = get_ptb_fidelity("proxy")
        return (f.hidden_size, f.num_layers)
    return (0, 0)
