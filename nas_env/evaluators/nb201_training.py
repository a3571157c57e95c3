"""Score NAS-Bench-201 cells by training NB201's network on CIFAR-10 (the env's trained mode).

The cell is built into :class:`~nas_env.builders.nb201.NB201Network` and trained with the
package's trainer (:func:`~nas_env.training.cifar.train_child`) at a fidelity preset, on the
paper's fixed 45k/5k split. Users can check a table against their own training, and the
presets can be measured against published accuracies (``benchmarks/bench_fidelity.py``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
import traceback

import torch

from nas_env.builders.cnn import count_parameters
from nas_env.builders.nb201 import build_nb201
from nas_env.data.cifar import SPLIT_SEED, load_cifar10
from nas_env.errors import check_range
from nas_env.evaluators.base import Evaluator
from nas_env.evaluators.training import resolve_device
from nas_env.search_spaces.nb201 import NB201Architecture
from nas_env.training.cifar import train_child
from nas_env.training.recipes import Fidelity, get_fidelity
from nas_env.type_aliases import EvalResult, Metric

NUM_TEST_IMAGES = 10_000
"""Images in the CIFAR-10 test set."""


class NB201TrainingEvaluator(Evaluator):
    """Trains NB201's network around each cell on CIFAR-10 and reports validation and test accuracy.

    ``val_accuracy`` (the reward's input) is the trainer's validation accuracy (maximum over the
    fidelity's last ``reward_epochs``). ``test_accuracy``, reported but never a reward, is scored
    after training on the first ``test_images`` images of the CIFAR-10 test set.

    Args:
        fidelity: A preset name (``"paper"``, ``"proxy"``, ``"smoke"``) or a ``Fidelity``.
        data_dir: Root holding ``cifar-10-batches-py/``; defaults to ``$NAS_ENV_DATA``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        download: Download CIFAR-10 (md5-checked) when it is not found.
        test_images: Test images scored; ``None`` means as many as the fidelity's validation
            images (all 10,000 cost as much as 2 proxy epochs of training on CPU).

    Raises:
        ValueError: Unknown preset or ``test_images`` outside 1..10,000.
    """

    metric_names = (
        Metric.VAL_ACCURACY.value,
        Metric.FINAL_VAL_ACCURACY.value,
        Metric.TRAIN_LOSS.value,
        Metric.TEST_ACCURACY.value,
    )

    def __init__(
        self,
        fidelity: str | Fidelity = "proxy",
        data_dir: str | os.PathLike[str] | None = None,
        device: str | torch.device = "auto",
        download: bool = True,
        test_images: int | None = None,
    ) -> None:
        """Resolve the fidelity; the data is loaded on the first evaluation."""
        self.fidelity = get_fidelity(fidelity)
        self.data_dir = data_dir
        self.device = resolve_device(device)
        self.download = download
        self.test_images = self.fidelity.valid_images if test_images is None else test_images
        check_range("test_images", self.test_images, 1, NUM_TEST_IMAGES)

    @property
    def fingerprint(self) -> str:
        """Network, CIFAR-10 split, recipe, trainer version and test images (not the device)."""
        payload = f"nb201-net-cifar10-split{SPLIT_SEED}-{self.fidelity.fingerprint}-test{self.test_images}"
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def load_data(self) -> None:
        """Load (and if needed download) CIFAR-10 now, so that a missing dataset fails early."""
        load_cifar10(self.data_dir, with_test=True, download_missing=self.download)

    def evaluate(self, arch: NB201Architecture, seed: int) -> EvalResult:
        """Build and train NB201's network around ``arch`` with ``seed``; failures become results."""
        data = load_cifar10(self.data_dir, with_test=True, download_missing=self.download)
        assert data.test_x is not None and data.test_y is not None  # loaded with_test
        data = dataclasses.replace(
            data, test_x=data.test_x[: self.test_images], test_y=data.test_y[: self.test_images]
        )
        torch.manual_seed(seed)  # weight initialisation
        model = build_nb201(arch)
        num_params = count_parameters(model)
        start = time.perf_counter()
        try:
            report = train_child(model, data, self.fidelity, seed, self.device, with_test=True)
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
            Metric.TEST_ACCURACY.value: float(report.test_accuracy or 0.0),
        }
        return EvalResult("ok", metrics, num_params, report.seconds, seed=seed)
