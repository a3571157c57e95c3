"""Score NAS-Bench-201 cells by training NB201's network on CIFAR-10 (the env's trained mode).

The cell is built into :class:`~nas_env.builders.nb201.NB201Network` and trained exactly like a CNN
child (:class:`~nas_env.evaluators.cifar.CifarTrainingEvaluator`: same trainer, presets and
fixed 45k/5k split). Users can check a table against their own training, and the presets can be
measured against published accuracies (``benchmarks/bench_fidelity.py``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import torch
from torch import nn

from nas_env.builders.nb201 import CELLS_PER_STAGE, STEM_CHANNELS, NB201Network
from nas_env.data.cifar import SPLIT_SEED, CifarSplits
from nas_env.errors import check_range
from nas_env.evaluators.cifar import CifarTrainingEvaluator
from nas_env.records import EvalResult, Metric
from nas_env.search_spaces.nb201 import NB201Architecture
from nas_env.training.recipes import NB201_FIDELITIES, Fidelity

NUM_TEST_IMAGES = 10_000
"""Images in the CIFAR-10 test set."""
NB201_NETWORKS: dict[str, tuple[int, int]] = {"proxy": (16, 1), "deep": (8, 3), "smoke": (8, 1)}
"""``(channels, cells_per_stage)`` of the reduced networks the cheap presets train.

NB201's own network (16 channels, 5 cells per stage) is too costly per cell for a CPU search; one
cell per stage (``proxy``) keeps the cell's operations and the 3-stage skeleton at a fraction of the
cost, and 8 channels with 3 cells per stage (``deep``) keep some of NB201's depth, where a skip
connection pays, at about 1.3 times ``proxy``'s cost (figures in ``docs/fidelity.md``). ``paper`` (and
any ``Fidelity`` passed in) trains NB201's full network."""


class NB201TrainingEvaluator(CifarTrainingEvaluator):
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
            images.
        channels: Channels of the network's first stage; ``None``: the preset's network
            (:data:`NB201_NETWORKS`), else NB201's 16.
        cells_per_stage: Cells per stage; ``None``: the preset's network, else NB201's 5.

    Raises:
        ValueError: Unknown preset, or ``test_images``, ``channels`` or ``cells_per_stage`` out of range.
    """

    metric_names = (*CifarTrainingEvaluator.metric_names, Metric.TEST_ACCURACY.value)

    def __init__(
        self,
        fidelity: str | Fidelity = "proxy",
        data_dir: str | os.PathLike[str] | None = None,
        device: str | torch.device = "auto",
        download: bool = True,
        test_images: int | None = None,
        channels: int | None = None,
        cells_per_stage: int | None = None,
    ) -> None:
        """Resolve the fidelity and the network; the data is loaded on the first evaluation."""
        preset = fidelity if isinstance(fidelity, str) else None
        if preset is not None and preset in NB201_FIDELITIES:
            fidelity = NB201_FIDELITIES[preset]
        super().__init__(fidelity, data_dir=data_dir, device=device, download=download)
        default_channels, default_cells = NB201_NETWORKS.get(preset or "", (STEM_CHANNELS, CELLS_PER_STAGE))
        self.channels = default_channels if channels is None else channels
        self.cells_per_stage = default_cells if cells_per_stage is None else cells_per_stage
        check_range("channels", self.channels, 1, 1024)
        check_range("cells_per_stage", self.cells_per_stage, 1, 64)
        self.test_images = self.fidelity.valid_images if test_images is None else test_images
        check_range("test_images", self.test_images, 1, NUM_TEST_IMAGES)

    @property
    def fingerprint(self) -> str:
        """Network, CIFAR-10 split, recipe, trainer version and test images (not the device)."""
        net = (
            ""
            if (self.channels, self.cells_per_stage) == (16, 5)
            else f"-c{self.channels}n{self.cells_per_stage}"
        )
        payload = (
            f"nb201-net{net}-cifar10-split{SPLIT_SEED}-{self.fidelity.fingerprint}-test{self.test_images}"
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def _data(self, with_test: bool) -> CifarSplits:
        data = super()._data(with_test=True)
        assert data.test_x is not None and data.test_y is not None  # loaded with_test
        return dataclasses.replace(
            data, test_x=data.test_x[: self.test_images], test_y=data.test_y[: self.test_images]
        )

    reference_name = "an all-3x3-convolution cell"

    def reference_model(self) -> nn.Module:
        """The network around the costliest cell (every edge a 3x3 convolution), for cost estimates."""
        return self.build_model(NB201Architecture(("nor_conv_3x3",) * 6))

    def build_model(self, arch: NB201Architecture) -> nn.Module:
        """NB201's network (or the preset's reduced one) around the cell ``arch``."""
        return NB201Network(arch, channels=self.channels, cells_per_stage=self.cells_per_stage)

    def evaluate(self, arch: NB201Architecture, seed: int, with_test: bool = True) -> EvalResult:
        """Build and train NB201's network around ``arch``; the test accuracy is always scored."""
        return super().evaluate(arch, seed, with_test=True)
