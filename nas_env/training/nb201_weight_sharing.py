"""Train one NAS-Bench-201 supernet on sampled cells and score cells with its shared weights.

The alternation, data streams, optimizer and checkpoints are those of the CNN space's
:class:`~nas_env.training.weight_sharing.SharedWeightTrainer`; only the supernet
(:class:`~nas_env.builders.nb201_supernet.NB201Supernet`) and the batch norm of a score differ.
Trained on uniformly random cells it is RSPS (Li & Talwalkar, UAI 2019, NB201's Table 5); trained
on the agent's children it is ENAS's alternation.

Batch norm when scoring (``bn_images``): with 0, a cell is normalised with the statistics of the
batch it is scored on (NB201's one-shot baselines do this); with ``n > 0``, the running statistics of
the cell's path are first re-estimated on the first ``n`` training images, unaugmented, and the
cell is scored in eval mode (BN re-calibration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from nas_env.builders.nb201_supernet import NB201Supernet
from nas_env.data.cifar import CifarSplits
from nas_env.errors import check_range
from nas_env.search_spaces.nb201 import NB201Architecture, NB201SearchSpace
from nas_env.training.weight_sharing import SharedRecipe, SharedWeightTrainer


@dataclass(frozen=True)
class NB201SharedRecipe(SharedRecipe):
    """:class:`SharedRecipe` plus the supernet's network and the batch norm of a score."""

    channels: int = 16
    """Channels of the first stage (NB201: 16)."""
    cells_per_stage: int = 1
    """Cells per stage (NB201: 5; the trained ``proxy`` preset's reduced network: 1)."""
    bn_images: int = 0
    """Training images the batch-norm statistics of a scored cell are re-estimated on; 0: the
    statistics of the scored batch itself."""

    def __post_init__(self) -> None:
        """Validate every field, naming the bad value."""
        super().__post_init__()
        check_range("channels", self.channels, 1, 1024)
        check_range("cells_per_stage", self.cells_per_stage, 1, 64)
        check_range("bn_images", self.bn_images, 0, self.train_images)


class NB201SharedTrainer(SharedWeightTrainer):
    """The NB201 supernet, its optimizer and its data streams: trains on cells, scores cells.

    Args:
        space: NB201's space (it has no configuration; the network comes from ``recipe``).
        recipe: Network, training and scoring settings.
        data: CIFAR-10 splits (uint8).
        seed: Root of the initial weights and the training and validation minibatch streams.
        device: Where the supernet runs.
    """

    recipe: NB201SharedRecipe
    supernet: NB201Supernet

    def __init__(
        self,
        space: NB201SearchSpace,
        recipe: NB201SharedRecipe,
        data: CifarSplits,
        seed: int,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(space, recipe, data, seed, device)

    def _build_supernet(self, space: Any, seed: int) -> NB201Supernet:
        recipe = self.recipe
        return NB201Supernet(recipe.channels, recipe.cells_per_stage, seed=seed)

    def _param_groups(self) -> list[dict[str, Any]]:
        return [{"params": list(self.supernet.parameters())}]

    def _grow(self, arch: Any) -> None:
        """Nothing to grow: every module exists from the start."""

    def accuracy_and_loss(
        self, arch: NB201Architecture, indices: torch.Tensor | None = None, batch: int = 1000
    ) -> tuple[float, float]:
        """Accuracy and loss of cell ``arch`` on images ``indices``, BN as ``recipe.bn_images`` says."""
        self.supernet.check_arch(arch)
        n = self.recipe.bn_images
        if n:
            images = [self.prep(self.train_x[i : min(i + batch, n)], None) for i in range(0, n, batch)]
            self.supernet.recalibrate(arch, images)
        else:
            self.supernet.train()  # normalise with the scored batch's statistics
        return super().accuracy_and_loss(arch, indices, batch)
