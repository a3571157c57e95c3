"""A supernet over NAS-Bench-201's cells: every cell is one path through one set of shared weights.

One-shot NAS on NB201 (random sampling with parameter sharing, RSPS: Li & Talwalkar, UAI 2019,
https://arxiv.org/abs/1902.07638; ENAS; the weight-sharing rows of NB201's Table 5) trains one
network whose every cell edge holds all five operations; a cell is the path that picks one
operation per edge, the same on every cell of the network (NB201 repeats one cell).

The skeleton is :class:`~nas_env.builders.nb201.NB201Network`'s: stem, three stages of
``cells_per_stage`` cells with residual reduction blocks between them, batch norm, pooling and a
linear classifier, all shared by every cell. Each edge of each cell keeps one module per operation
(``none``, ``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3``, ``avg_pool_3x3``; the
convolutions each with their own batch norm, as NB201's one-shot code keeps them). A cell's
forward pass is therefore *exactly* that of the standalone network holding the chosen modules
(:meth:`NB201Supernet.export_child` builds it; ``tests/test_nb201_supernet.py`` checks outputs
and gradients).

Batch norm keeps running averages like the standalone network, but a running average mixes every
cell that ever ran through a module, so the trainer either normalises with the statistics of the
batch being scored or re-estimates them for the cell first (:meth:`NB201Supernet.recalibrate`).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from nas_env.builders.nb201 import STEM_CHANNELS, NB201Network, cell_forward, live_edges, make_op, skeleton
from nas_env.errors import InvalidArchitectureError
from nas_env.search_spaces.nb201 import EDGES, OPS, NB201Architecture, NB201SearchSpace

_OP_INDEX = {op: i for i, op in enumerate(OPS)}


class SuperCell(nn.Module):
    """One cell position of the supernet: every operation on every edge."""

    def __init__(self, channels: int) -> None:
        """Build ``len(OPS)`` modules per edge, each with ``channels`` channels in and out."""
        super().__init__()
        self.edges = nn.ModuleList(nn.ModuleList(make_op(op, channels) for op in OPS) for _ in EDGES)

    def chosen(self, arch: NB201Architecture) -> list[nn.Module]:
        """The module of each edge that ``arch`` picks."""
        return [cast(nn.ModuleList, ops)[_OP_INDEX[op]] for ops, op in zip(self.edges, arch.ops, strict=True)]

    def forward(self, x: torch.Tensor, arch: NB201Architecture) -> torch.Tensor:
        """Run the cell ``arch`` (the same sum over live edges as the standalone cell)."""
        return cell_forward(x, live_edges(arch), self.chosen(arch))


class NB201Supernet(nn.Module):
    """NB201's network with every operation on every edge; ``forward(x, arch)`` runs cell ``arch``.

    Args:
        channels: Channels of the first stage (doubled at each reduction); NB201: 16.
        cells_per_stage: Cells per stage; NB201: 5 (the trained ``proxy`` preset: 1).
        num_classes: Classifier outputs.
        seed: Draws the initial weights (the global torch generator is left as it was).
    """

    def __init__(
        self, channels: int = STEM_CHANNELS, cells_per_stage: int = 1, num_classes: int = 10, seed: int = 0
    ) -> None:
        super().__init__()
        self.space = NB201SearchSpace()
        self.channels = channels
        self.cells_per_stage = cells_per_stage
        self.num_classes = num_classes
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            stem, cells, lastact, classifier = skeleton(channels, cells_per_stage, num_classes, SuperCell)
        self.stem, self.cells, self.lastact = stem, nn.ModuleList(cells), lastact  # the network's order
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = classifier

    # ---- the interface the shared-weight trainer uses (as CnnSupernet's) -------------------------

    @property
    def num_layers(self) -> int:
        """Not a growing supernet: every cell's modules exist from the start (0 layers to grow)."""
        return 0

    def grow(self, num_layers: int) -> list[nn.Module]:
        """Nothing to create (see :attr:`num_layers`)."""
        return []

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """One optimizer group: every shared weight."""
        return [list(self.parameters())]

    def check_arch(self, arch: object) -> None:
        """Raise ``InvalidArchitectureError`` unless ``arch`` is an NB201 cell."""
        if not isinstance(arch, NB201Architecture):
            raise InvalidArchitectureError(
                f"the NB201 supernet runs NB201Architecture cells, got {type(arch).__name__}: {arch!r}"
            )

    # ---- children ---------------------------------------------------------------------------------

    def path(self, arch: NB201Architecture) -> list[nn.Module]:
        """Every module cell ``arch`` runs through, in network order (shared ones included)."""
        modules: list[nn.Module] = [self.stem]
        for cell in self.cells:
            modules += cell.chosen(arch) if isinstance(cell, SuperCell) else [cell]
        return [*modules, self.lastact, self.classifier]

    def num_params(self, arch: NB201Architecture) -> int:
        """Parameters of the standalone network around ``arch`` (every edge's module counts, as in NB201)."""
        return sum(p.numel() for module in self.path(arch) for p in module.parameters())

    def forward(self, x: torch.Tensor, arch: NB201Architecture) -> torch.Tensor:
        """Class logits of cell ``arch`` on images ``x``."""
        out = self.stem(x)
        for cell in self.cells:
            out = cell(out, arch) if isinstance(cell, SuperCell) else cell(out)
        out = self.lastact(out)
        return self.classifier(self.global_pooling(out).flatten(1))

    @torch.no_grad()
    def recalibrate(self, arch: NB201Architecture, batches: list[torch.Tensor]) -> None:
        """Re-estimate the running batch-norm statistics of ``arch``'s path from ``batches`` of images.

        The statistics are the plain average over the batches (momentum ``None``), so that
        :meth:`forward` in eval mode normalises as the standalone cell trained alone would, rather
        than with averages mixed over every cell that ran through a module (the usual fix of
        one-shot rankings; SPOS, Guo et al., ECCV 2020). Leaves the supernet in eval mode.
        """
        norms = [m for module in self.path(arch) for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        self.train()
        try:
            for xb in batches:
                self(xb, arch)
        finally:
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum
            self.eval()

    def export_child(self, arch: NB201Architecture) -> NB201Network:
        """The standalone :class:`NB201Network` around ``arch``, holding copies of its shared weights."""
        self.check_arch(arch)
        child = NB201Network(arch, self.num_classes, self.channels, self.cells_per_stage)
        state = self.state_dict()
        mapped = {}
        for key in child.state_dict():
            parts = key.split(".")
            if parts[0] == "cells" and isinstance(self.cells[int(parts[1])], SuperCell):
                edge = int(parts[3])  # cells.<c>.edges.<k>.<rest> -> cells.<c>.edges.<k>.<op>.<rest>
                parts.insert(4, str(_OP_INDEX[arch.ops[edge]]))
            mapped[key] = state[".".join(parts)].clone()
        child.load_state_dict(mapped)
        return child.to(next(self.parameters()).device)
