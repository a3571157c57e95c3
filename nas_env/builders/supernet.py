"""A supernet over the CNN search space: every child is a set of slices of one set of shared weights.

Efficient NAS (Pham et al., ICML 2018, https://arxiv.org/abs/1802.03268, sections 2 and 3.1)
shares the weights of all children of this very macro space, so that a child is scored without
being trained from scratch. This module holds those weights and runs any child of a
:class:`~nas_env.search_spaces.cnn.CnnSearchSpace` configuration on them.

Weight layout, per layer ``i`` (``F`` = the space's largest number of filters, offset included):

- **Convolutions.** One weight per (filter height, filter width) pair of the space, of shape
  ``[F, 3 + i * F, fh, fw]``. Its input channels are laid out in blocks, ``[image (3) | layer 0
  (F) | layer 1 (F) | ... | layer i-1 (F)]``. A child's layer with ``num_filters = n`` and
  inputs ``(j, k)`` uses output rows ``[:n]`` and, as input channels, the first
  ``num_filters_j`` channels of block ``j`` followed by the first ``num_filters_k`` of block
  ``k`` (the order of the child's concatenation). A layer without inputs reads the image block.
  So a filter of layer ``i`` keeps the same weights for input ``j`` whatever else is
  concatenated beside it, and the narrower choices of a width are prefixes of the wider ones.
  Strides share the weight (a stride changes where the filter is applied, not the filter).
- **Batch norm.** An affine scale and shift per (layer, filter height, filter width), sliced to
  ``[:n]`` (ENAS keeps one batch norm per branch). Statistics always come from the batch being
  run, in training and in scoring, and no running averages are kept: a running average would mix
  the statistics of every child that ever ran on the layer (ENAS's child models normalise with
  the batch's statistics in the same way when they are scored during the search).
- **Classifier.** One ``[num_classes, F]`` block per layer plus one shared bias. A child's
  classifier is the concatenation of blocks ``[:, :num_filters_j]`` of its output layers ``j``:
  the slice of one linear layer over the concatenation of every layer's widest output.

With these rules a child's forward pass is *exactly* the forward pass, in training mode, of the
standalone :func:`~nas_env.builders.cnn.build_cnn` model holding the same slices
(:meth:`CnnSupernet.export_child` builds it), including the paper's rules: the image feeds a
layer without inputs, inputs are zero-padded bottom/right to the largest spatial size before
concatenation, and every output no layer reads goes to the classifier (global average pooling
of a zero-padded map = plain mean x area ratio).

Layers are created when a child first needs them (:meth:`CnnSupernet.grow`), each from its own
seed, so a supernet grown to ``n`` layers in any order holds the same weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas_env.builders.cnn import IMAGE_CHANNELS, CnnChild, build_cnn, conv_output_size
from nas_env.errors import InvalidArchitectureError
from nas_env.search_spaces.cnn import FILTER_SIZES, NUM_FILTERS, CnnArchitecture, CnnSearchSpace

PLAN_CACHE_SIZE = 4096
"""Child plans (index tensors, paddings) kept per supernet; a 400-child search has at most 400."""


def kernel_key(filter_height: int, filter_width: int) -> str:
    """Name of the shared weight of one filter shape, e.g. ``"3x5"``."""
    return f"{filter_height}x{filter_width}"


class SupernetLayer(nn.Module):
    """One layer's shared weights: a convolution and batch-norm affine per filter shape, a classifier block.

    Args:
        in_channels: Width of the layer's input layout: 3 + layer index x ``max_filters``.
        max_filters: Largest number of filters a child's layer may have.
        num_classes: Classifier outputs.
        generator: Draws the initial weights.
    """

    def __init__(
        self, in_channels: int, max_filters: int, num_classes: int, generator: torch.Generator
    ) -> None:
        super().__init__()
        keys = [kernel_key(h, w) for h in FILTER_SIZES for w in FILTER_SIZES]
        self.conv = nn.ParameterDict()
        self.bn_weight = nn.ParameterDict()
        self.bn_bias = nn.ParameterDict()
        for key in keys:
            fh, fw = (int(s) for s in key.split("x"))
            weight = torch.empty(max_filters, in_channels, fh, fw)
            # He initialisation over the fan-out (torchvision's ResNets): independent of how many
            # input blocks a child reads, and batch norm rescales each child's sum anyway.
            std = math.sqrt(2.0 / (max_filters * fh * fw))
            self.conv[key] = nn.Parameter(weight.normal_(0.0, std, generator=generator))
            self.bn_weight[key] = nn.Parameter(torch.ones(max_filters))
            self.bn_bias[key] = nn.Parameter(torch.zeros(max_filters))
        bound = 1 / math.sqrt(max_filters)  # nn.Linear's default range for one block
        self.classifier = nn.Parameter(
            torch.empty(num_classes, max_filters).uniform_(-bound, bound, generator=generator)
        )


@dataclass(frozen=True)
class _LayerPlan:
    key: str
    num_filters: int
    kernel: tuple[int, int]
    stride: int
    inputs: tuple[int, ...]
    in_index: torch.Tensor | None  # input channels of the shared weight; None: the image (first 3)
    pads: tuple[tuple[int, int, int, int], ...]
    pool: bool


@dataclass(frozen=True)
class _ChildPlan:
    layers: tuple[_LayerPlan, ...]
    outputs: tuple[int, ...]
    output_scale: torch.Tensor
    num_params: int


class CnnSupernet(nn.Module):
    """Shared weights for every child of a CNN search space configuration (see the module docstring).

    Args:
        space: The space (its filter offset fixes the widest layer; its depth the first layers built).
        num_classes: Classifier outputs.
        seed: Seeds the initial weights; layer ``i`` is drawn from its own seed, derived from ``seed``.
    """

    def __init__(self, space: CnnSearchSpace, num_classes: int = 10, seed: int = 0) -> None:
        super().__init__()
        self.space = space
        self.num_classes = num_classes
        self.seed = int(seed)
        self.max_filters = max(NUM_FILTERS) + space.filter_offset
        self.layers = nn.ModuleList()
        self.bias = nn.Parameter(torch.zeros(num_classes))
        self._plans: dict[tuple[CnnArchitecture, int, int, str], _ChildPlan] = {}
        self.grow(space.num_layers)

    @property
    def num_layers(self) -> int:
        """Layers created so far (children up to this depth run without growing)."""
        return len(self.layers)

    def grow(self, num_layers: int) -> list[SupernetLayer]:
        """Create the layers up to ``num_layers`` (at most the space's ``max_layers``); return the new ones.

        Raises:
            InvalidArchitectureError: ``num_layers`` exceeds the space's ``max_layers``.
        """
        if num_layers > self.space.max_layers:
            raise InvalidArchitectureError(
                f"a {num_layers}-layer child does not fit a supernet over max_layers={self.space.max_layers}"
            )
        device = self.bias.device
        new = []
        for i in range(self.num_layers, num_layers):
            seed = int(np.random.SeedSequence([self.seed, i]).generate_state(1)[0])
            layer = SupernetLayer(
                IMAGE_CHANNELS + i * self.max_filters,
                self.max_filters,
                self.num_classes,
                torch.Generator().manual_seed(seed),
            ).to(device)
            self.layers.append(layer)
            new.append(layer)
        return new

    # ---- planning a child -----------------------------------------------------------------------

    def check_arch(self, arch: CnnArchitecture) -> None:
        """Raise unless ``arch`` is a child of this supernet's space (at its own depth).

        Raises:
            InvalidArchitectureError: A filter shape, width, stride, connection or pooling that the
                space cannot produce, or more layers than ``max_layers``; the message names it.
        """
        if arch.num_layers > self.space.max_layers:
            raise InvalidArchitectureError(
                f"{arch.to_str()!r} has {arch.num_layers} layers; the supernet's space allows "
                f"max_layers={self.space.max_layers}"
            )
        self.space.resized(arch.num_layers).encode(arch)

    def _plan(self, arch: CnnArchitecture, height: int, width: int) -> _ChildPlan:
        key = (arch, height, width, str(self.bias.device))
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= PLAN_CACHE_SIZE:
                self._plans.clear()
            plan = self._plans[key] = self._make_plan(arch, height, width)
        return plan

    def _make_plan(self, arch: CnnArchitecture, height: int, width: int) -> _ChildPlan:
        """Index tensors and paddings of one child, as ``CnnChild`` computes them."""
        self.check_arch(arch)
        device = self.bias.device
        sizes: list[tuple[int, int]] = []
        layers: list[_LayerPlan] = []
        num_params = 0
        for layer in arch.layers:
            in_sizes = [sizes[j] for j in layer.inputs] or [(height, width)]
            h, w = max(s[0] for s in in_sizes), max(s[1] for s in in_sizes)
            in_index = None
            in_ch = IMAGE_CHANNELS
            if layer.inputs:
                blocks = [
                    torch.arange(arch.layers[j].num_filters) + IMAGE_CHANNELS + j * self.max_filters
                    for j in layer.inputs
                ]
                in_index = torch.cat(blocks).to(device)
                in_ch = len(in_index)
            fh, fw = layer.filter_height, layer.filter_width
            layers.append(
                _LayerPlan(
                    key=kernel_key(fh, fw),
                    num_filters=layer.num_filters,
                    kernel=(fh, fw),
                    stride=layer.stride,
                    inputs=layer.inputs,
                    in_index=in_index,
                    pads=tuple((0, w - sw, 0, h - sh) for sh, sw in in_sizes),
                    pool=layer.pool,
                )
            )
            num_params += layer.num_filters * (in_ch * fh * fw + 2)  # conv (no bias) + batch norm affine
            h, w = conv_output_size(h, fh, layer.stride), conv_output_size(w, fw, layer.stride)
            if layer.pool:
                h, w = -(-h // 2), -(-w // 2)
            sizes.append((h, w))
        outputs = tuple(arch.outputs())
        top_h, top_w = max(sizes[i][0] for i in outputs), max(sizes[i][1] for i in outputs)
        scale = torch.cat(
            [
                torch.full((arch.layers[i].num_filters,), sizes[i][0] * sizes[i][1] / (top_h * top_w))
                for i in outputs
            ]
        ).to(device)
        num_params += (len(scale) + 1) * self.num_classes
        return _ChildPlan(tuple(layers), outputs, scale, num_params)

    def layer(self, i: int) -> SupernetLayer:
        """The shared weights of layer ``i``."""
        return cast(SupernetLayer, self.layers[i])

    def classifier(self, arch: CnnArchitecture) -> torch.Tensor:
        """``arch``'s classifier weight: the blocks of its output layers, each cut to the layer's width."""
        outputs = arch.outputs()
        return torch.cat([self.layer(i).classifier[:, : arch.layers[i].num_filters] for i in outputs], dim=1)

    def num_params(self, arch: CnnArchitecture) -> int:
        """Trainable parameters of ``arch``'s standalone network (what :func:`build_cnn` would count)."""
        return self._plan(arch, 32, 32).num_params

    # ---- running a child --------------------------------------------------------------------------

    def child_weights(self, arch: CnnArchitecture, i: int, plan: _LayerPlan) -> tuple[torch.Tensor, ...]:
        """Layer ``i``'s convolution weight, batch-norm scale and shift as ``arch``'s child sees them."""
        layer = self.layer(i)
        n = plan.num_filters
        weight = layer.conv[plan.key][:n]
        weight = (
            weight[:, :IMAGE_CHANNELS] if plan.in_index is None else weight.index_select(1, plan.in_index)
        )
        return weight, layer.bn_weight[plan.key][:n], layer.bn_bias[plan.key][:n]

    def forward(self, x: torch.Tensor, arch: CnnArchitecture) -> torch.Tensor:
        """Class logits ``[batch, num_classes]`` of child ``arch`` on images ``x``, with the shared weights.

        Raises:
            InvalidArchitectureError: ``arch`` is not a child of the space, or is deeper than the
                layers built so far (call :meth:`grow` first).
        """
        if arch.num_layers > self.num_layers:
            raise InvalidArchitectureError(
                f"{arch.to_str()!r} has {arch.num_layers} layers; only {self.num_layers} are built "
                "(grow first)"
            )
        plan = self._plan(arch, x.shape[-2], x.shape[-1])
        outs: list[torch.Tensor] = []
        for i, step in enumerate(plan.layers):
            if step.inputs:
                parts = [
                    F.pad(outs[j], p) if any(p) else outs[j]
                    for j, p in zip(step.inputs, step.pads, strict=True)
                ]
                inp = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
            else:
                inp = x
            weight, bn_weight, bn_bias = self.child_weights(arch, i, step)
            padding = (step.kernel[0] // 2, step.kernel[1] // 2)
            out = F.conv2d(inp, weight, None, step.stride, padding)
            out = F.relu(F.batch_norm(out, None, None, bn_weight, bn_bias, training=True))
            if step.pool:
                out = F.max_pool2d(out, 2, 2, ceil_mode=True)
            outs.append(out)
        pooled = torch.cat([outs[i].mean(dim=(2, 3)) for i in plan.outputs], dim=1)
        return F.linear(pooled * plan.output_scale, self.classifier(arch), self.bias)

    def export_child(self, arch: CnnArchitecture, image_size: int = 32) -> CnnChild:
        """A standalone :func:`build_cnn` network holding ``arch``'s slices of the shared weights.

        In training mode (batch statistics) its forward pass equals ``self(x, arch)``. Its batch-norm
        running statistics are the fresh ones (mean 0, variance 1): the supernet keeps none.
        """
        child = build_cnn(arch, num_classes=self.num_classes, image_size=image_size).to(self.bias.device)
        plan = self._plan(arch, image_size, image_size)
        with torch.no_grad():
            for i, (step, block) in enumerate(zip(plan.layers, child.layers, strict=True)):
                conv, bn = cast(nn.Conv2d, block[0]), cast(nn.BatchNorm2d, block[1])  # type: ignore[index]
                weight, bn_weight, bn_bias = self.child_weights(arch, i, step)
                conv.weight.copy_(weight)
                bn.weight.copy_(bn_weight)
                bn.bias.copy_(bn_bias)
            child.classifier.weight.copy_(self.classifier(arch))
            child.classifier.bias.copy_(self.bias)
        return child
