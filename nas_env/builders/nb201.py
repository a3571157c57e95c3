"""Build NAS-Bench-201's network around a cell (Dong & Yang, ICLR 2020, section 2.1).

The macro skeleton is NB201's ``TinyNetwork``: a 3x3 convolution stem with 16 channels and batch
norm; three stages of 5 cells with 16, 32 and 64 channels; between stages a residual reduction
block (two ReLU-conv3x3-BN with stride 2 on the first, plus a 2x2 average-pool and 1x1-conv
shortcut); then BN-ReLU, global average pooling and a linear classifier.

Inside a cell, node ``i`` is the sum over its inputs ``j < i`` of ``op(node_j)``, and the output is
node 3. Operations, as in NB201: ``none`` (zeros), ``skip_connect`` (identity), ``nor_conv_1x1``
and ``nor_conv_3x3`` (ReLU-conv-BN), ``avg_pool_3x3`` (3x3 average pooling, stride 1, padding 1,
padding not counted). Every edge's module is built (so parameter counts match NB201's), but
``none`` edges and edges into nodes that cannot reach the output are skipped in ``forward``: the
output is the same, only faster.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from nas_env.search_spaces.nb201 import EDGES, NUM_NODES, NB201Architecture

STEM_CHANNELS = 16
"""Channels of the stem and the first stage (NB201: C = 16)."""
CELLS_PER_STAGE = 5
"""Cells per stage (NB201: N = 5)."""


class ReLUConvBN(nn.Sequential):
    """ReLU -> conv (no bias) -> batch norm, NB201's convolution unit."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        """Same padding for odd ``kernel``."""
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """The ``none`` operation: zeros shaped like the input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x * 0``."""
        return x.mul(0.0)


def make_op(op: str, channels: int) -> nn.Module:
    """The module of one cell edge (stride 1, ``channels`` in and out)."""
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1)
    if op == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NB201 operation {op!r}")


def live_edges(arch: NB201Architecture) -> list[int]:
    """Indices (into :data:`EDGES`) of the edges that can change the cell's output.

    Those are the edges that are not ``none`` and lead to a node from which node 3 can be reached.
    An edge out of a node that only gets zeros still counts: a convolution's batch norm turns
    zeros into its learned shift, exactly as in NB201.
    """
    reaches_output = {NUM_NODES - 1}
    for (i, j), op in reversed(list(zip(EDGES, arch.ops, strict=True))):
        if op != "none" and i in reaches_output:
            reaches_output.add(j)
    return [
        k
        for k, ((i, _), op) in enumerate(zip(EDGES, arch.ops, strict=True))
        if op != "none" and i in reaches_output
    ]


class InferCell(nn.Module):
    """One NB201 cell with fixed operations."""

    def __init__(self, arch: NB201Architecture, channels: int) -> None:
        """Build every edge's operation with ``channels`` channels."""
        super().__init__()
        self.edges = nn.ModuleList(make_op(op, channels) for op in arch.ops)
        self._live = live_edges(arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sum each node's live inputs (a node without any is zeros, as NB201's sum of ``none``)."""
        return cell_forward(x, self._live, self.edges)


def cell_forward(
    x: torch.Tensor, live: Sequence[int], edges: Sequence[nn.Module] | nn.ModuleList
) -> torch.Tensor:
    """Run a cell on ``x``: node ``i`` sums ``edges[k](node_j)`` over its live edges ``k = (i, j)``.

    ``edges[k]`` is the module of edge ``k`` (the standalone cell's, or the supernet's chosen op);
    a node without live inputs is zeros, as NB201's sum of ``none`` edges.
    """
    nodes: list[torch.Tensor | None] = [x] + [None] * (NUM_NODES - 1)
    for k in live:
        i, j = EDGES[k]
        source = nodes[j]
        out = edges[k](x.mul(0.0) if source is None else source)
        previous = nodes[i]
        nodes[i] = out if previous is None else previous + out
    result = nodes[NUM_NODES - 1]
    return x.mul(0.0) if result is None else result


class ResNetBasicBlock(nn.Module):
    """NB201's reduction block: two ReLU-conv3x3-BN (first with stride 2) plus a pooled shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        """Halve the resolution and go from ``c_in`` to ``c_out`` channels."""
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual sum of the two branches."""
        return self.downsample(x) + self.conv_b(self.conv_a(x))


def skeleton(
    channels: int, cells_per_stage: int, num_classes: int, make_cell: Callable[[int], nn.Module]
) -> tuple[nn.Sequential, list[nn.Module], nn.Sequential, nn.Linear]:
    """NB201's macro skeleton around cells made by ``make_cell(channels)``, built in network order.

    Returns the stem, the stages' cells with the reduction blocks between them, the final BN-ReLU
    and the classifier (the standalone network and the supernet differ only in their cells).
    """
    stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
    cells: list[nn.Module] = []
    c = channels
    for stage in range(3):
        if stage:
            cells.append(ResNetBasicBlock(c, 2 * c))
            c *= 2
        cells += [make_cell(c) for _ in range(cells_per_stage)]
    return stem, cells, nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True)), nn.Linear(c, num_classes)


class NB201Network(nn.Module):
    """NB201's ``TinyNetwork``: stem, 3 stages of cells with reduction blocks, classifier.

    Args:
        arch: The cell, repeated in every stage.
        num_classes: Classifier outputs (CIFAR-10: 10).
        channels: Channels of the first stage (doubled at each reduction).
        cells_per_stage: Cells per stage.
    """

    def __init__(
        self,
        arch: NB201Architecture,
        num_classes: int = 10,
        channels: int = STEM_CHANNELS,
        cells_per_stage: int = CELLS_PER_STAGE,
    ) -> None:
        """Lay out the network as in NB201."""
        super().__init__()
        self.arch = arch
        stem, cells, lastact, classifier = skeleton(
            channels, cells_per_stage, num_classes, lambda c: InferCell(arch, c)
        )
        self.stem, self.cells, self.lastact = stem, nn.Sequential(*cells), lastact  # NB201's order
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits of shape ``[batch, num_classes]``."""
        out = self.lastact(self.cells(self.stem(x)))
        return self.classifier(self.global_pooling(out).flatten(1))


def build_nb201(arch: NB201Architecture, num_classes: int = 10) -> NB201Network:
    """Build NB201's CIFAR network around ``arch`` (see :class:`NB201Network`)."""
    return NB201Network(arch, num_classes=num_classes)
