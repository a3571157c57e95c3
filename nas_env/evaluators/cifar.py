"""Score CNN architectures by really training them on CIFAR-10."""

from __future__ import annotations

import functools
import hashlib
import os
import time
import traceback
import warnings
from typing import Any

import torch
from torch import nn

from nas_env.builders.cnn import build_cnn, count_parameters
from nas_env.data.cifar import SPLIT_SEED, CifarSplits, find_cifar10, load_cifar10
from nas_env.evaluators.base import Evaluator, resolve_device
from nas_env.records import EvalResult, Metric
from nas_env.search_spaces.cnn import CnnArchitecture
from nas_env.training.calibration import resolve_precision
from nas_env.training.cifar import CUDA_TUNING, CudaTuning, measure_seconds_per_child, train_child
from nas_env.training.recipes import Fidelity, get_fidelity

SLOW_CHILD_S = 600.0
"""A recipe expected to take longer than this per child on CPU is announced with its estimate."""
HEAVY_WORK = 200_000
"""Full-resolution training images seen per child above which the estimate is measured (the
``proxy`` preset sees the equivalent of 7,500, ``paper`` 2,250,000)."""


class CifarTrainingEvaluator(Evaluator):
    """Trains each child on CIFAR-10 at a fidelity and reports its validation accuracy.

    Args:
        fidelity: A preset name (``"paper"``, ``"proxy"``, ``"smoke"``) or a ``Fidelity``.
        data_dir: Root holding ``cifar-10-batches-py/``; defaults to ``$NAS_ENV_DATA``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        download: Download CIFAR-10 (md5-checked) when it is not found.
        deterministic: On CUDA, deterministic cuDNN algorithms and no autotuning, so that a seed
            gives the same bits every run (slower; see :class:`~nas_env.training.cifar.CudaTuning`).
            CPU training is deterministic either way.
    """

    cuda_tuning: CudaTuning = CUDA_TUNING
    """CUDA-only speed settings (class default: evaluators pickled before it existed load with it)."""

    metric_names: tuple[str, ...] = (
        Metric.VAL_ACCURACY.value,
        Metric.FINAL_VAL_ACCURACY.value,
        Metric.TRAIN_LOSS.value,
    )

    def __init__(
        self,
        fidelity: str | Fidelity = "proxy",
        data_dir: str | os.PathLike[str] | None = None,
        device: str | torch.device = "auto",
        download: bool = True,
        deterministic: bool = False,
    ) -> None:
        """Resolve the fidelity; the data is loaded on the first evaluation."""
        self.device = resolve_device(device)
        if deterministic:
            self.cuda_tuning = CudaTuning(deterministic=True)
        # "auto" precision: the faster of fp32 and bf16 on a timed reference child (cached per machine)
        reference = functools.partial(CifarTrainingEvaluator.reference_model, self)
        self.fidelity = resolve_precision(get_fidelity(fidelity), self.device, reference)
        self.data_dir = data_dir
        self.download = download

    def announce_cost(self) -> float | None:
        """On CPU, warn with the expected seconds per child when the recipe is heavy (``paper``).

        The estimate times a few training steps of :meth:`reference_model` now (a second or two),
        so it fits this machine. Called by the envs when they are made, before any child trains.

        Returns:
            The estimate in seconds, or ``None`` when the recipe is light or the device a GPU.
        """
        f = self.fidelity
        work = f.epochs * f.train_images * (f.resolution / 32) ** 2
        if self.device.type != "cpu" or work < HEAVY_WORK:
            return None
        seconds = measure_seconds_per_child(self.reference_model(), f, self.device)
        if seconds > SLOW_CHILD_S:
            warnings.warn(
                f"this fidelity ({f.epochs} epochs x {f.train_images:,} images at {f.resolution}x"
                f"{f.resolution}) takes about {seconds / 3600:.1f} h per child on this CPU (timed now on "
                f"{self.reference_name}; random children of the space can be several times slower). "
                "Use fidelity='proxy' on CPU, or a CUDA device.",
                UserWarning,
                stacklevel=3,
            )
        return seconds

    reference_name = "the 6-layer 3x3, 36-filter chain"
    """What :meth:`reference_model` is, for messages."""

    def reference_model(self) -> nn.Module:
        """A typical light child of the space, timed by :meth:`announce_cost`."""
        chain = " | ".join(["3x3:36"] + [f"3x3:36 <{i}" for i in range(5)])
        return build_cnn(CnnArchitecture.from_str(chain))

    @property
    def fingerprint(self) -> str:
        """CIFAR-10 split, recipe and trainer version (not the device: results are comparable)."""
        payload = f"cifar10-split{SPLIT_SEED}-{self.fidelity.fingerprint}"
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def load_data(self, with_test: bool = False) -> None:
        """Load (and if needed download) CIFAR-10 now, so that a missing dataset fails early."""
        self._data(with_test)

    def check_data(self) -> None:
        """Find CIFAR-10, downloading it when allowed, without loading it (``DatasetError`` if absent)."""
        find_cifar10(self.data_dir, download_missing=self.download)

    def _data(self, with_test: bool) -> CifarSplits:
        return load_cifar10(self.data_dir, with_test=with_test, download_missing=self.download)

    def build_model(self, arch: Any) -> nn.Module:
        """The child network of ``arch`` (subclasses train other networks the same way)."""
        return build_cnn(arch)

    def evaluate(self, arch: Any, seed: int, with_test: bool = False) -> EvalResult:
        """Build and train ``arch`` with ``seed``; failures become ``status="failed"`` results."""
        data = self._data(with_test)
        torch.manual_seed(seed)  # weight initialisation
        model = self.build_model(arch)
        num_params = count_parameters(model)
        start = time.perf_counter()
        try:
            tuning = self.cuda_tuning
            report = train_child(model, data, self.fidelity, seed, self.device, with_test, tuning)
        except (FloatingPointError, RuntimeError) as exc:  # NaN loss, out of memory
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            error = "".join(traceback.format_exception_only(exc)).strip()
            cost_s = time.perf_counter() - start
            return EvalResult("failed", num_params=num_params, cost_s=cost_s, error=error, seed=seed)
        metrics = {
            Metric.VAL_ACCURACY.value: report.reward_accuracy(self.fidelity.reward_epochs),
            Metric.FINAL_VAL_ACCURACY.value: report.val_accuracies[-1],
            Metric.TRAIN_LOSS.value: report.train_loss,
        }
        if report.test_accuracy is not None:
            metrics[Metric.TEST_ACCURACY.value] = report.test_accuracy
        return EvalResult("ok", metrics, num_params, report.seconds, seed=seed)
