"""The CNN macro search space of Zoph & Le (2017), sections 3.1 and 3.3.

Per layer the agent picks, one token per step: filter height, filter width, number of filters,
optionally the stride, then (with skip connections) one yes/no token per earlier layer ``j``
saying whether ``j`` feeds this layer (the paper's anchor points).

Architectures are frozen records with one canonical, round-tripping string form, written layer
by layer, layers joined by ``" | "``::

    {filter_height}x{filter_width}:{num_filters}[/s{stride}][ <{inputs}][ +pool]

- ``num_filters`` is the layer's real width (the space's filter offset already added);
- ``/s{stride}`` appears only when the stride is not 1;
- ``<i,j`` lists the earlier layers (0-based) whose outputs are concatenated as this layer's
  input; no ``<`` means the layer reads the image;
- ``+pool`` means a 2x2 max-pooling (stride 2) follows the layer.

Example, a 3-layer chain with a skip connection from layer 0 to layer 2::

    3x3:36 | 5x3:48 <0 | 3x7:64/s2 <0,1 +pool

Every layer output that no later layer reads goes to the classifier (concatenated, after
zero-padding to the largest spatial size).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

from nas_env.errors import InvalidArchitectureError, check_range
from nas_env.records import TokenSpec
from nas_env.search_spaces.base import SearchSpace

FILTER_SIZES: tuple[int, ...] = (1, 3, 5, 7)
"""Filter heights and widths (paper section 4.1)."""
NUM_FILTERS: tuple[int, ...] = (24, 36, 48, 64)
"""Numbers of filters (paper section 4.1)."""
STRIDES: tuple[int, ...] = (1, 2, 3)
"""Strides when they are predicted (paper section 4.1, "predicting strides")."""
MAX_LAYERS_LIMIT = 64
"""Largest ``max_layers`` accepted (observation size grows with its square)."""


_LAYER_RE = re.compile(
    r"^(?P<fh>\d+)x(?P<fw>\d+):(?P<nf>\d+)(?:/s(?P<stride>\d+))?"
    r"(?: <(?P<inputs>\d+(?:,\d+)*))?(?P<pool> \+pool)?$"
)


@dataclass(frozen=True)
class ConvLayer:
    """One convolutional layer: conv (same padding) -> batch norm -> ReLU [-> max-pool]."""

    filter_height: int
    """Kernel height (paper: 1, 3, 5 or 7)."""
    filter_width: int
    """Kernel width (paper: 1, 3, 5 or 7)."""
    num_filters: int
    """Output channels, filter offset included."""
    stride: int = 1
    """Stride in both directions (paper's main result: 1)."""
    inputs: tuple[int, ...] = ()
    """Earlier layers whose outputs are concatenated as input; empty means the image."""
    pool: bool = False
    """Whether a 2x2 max-pool with stride 2 follows the layer."""

    def to_str(self) -> str:
        """Return this layer's part of the canonical string."""
        text = f"{self.filter_height}x{self.filter_width}:{self.num_filters}"
        if self.stride != 1:
            text += f"/s{self.stride}"
        if self.inputs:
            text += " <" + ",".join(str(i) for i in self.inputs)
        if self.pool:
            text += " +pool"
        return text


@dataclass(frozen=True)
class CnnArchitecture:
    """A convolutional network of the Zoph & Le CNN space, as a tuple of layers."""

    layers: tuple[ConvLayer, ...]

    def __post_init__(self) -> None:
        """Check the connection rules that make every architecture buildable."""
        if not self.layers:
            raise InvalidArchitectureError("a CNN architecture needs at least one layer")
        for i, layer in enumerate(self.layers):
            if min(layer.filter_height, layer.filter_width, layer.num_filters, layer.stride) < 1:
                raise InvalidArchitectureError(f"layer {i} has a non-positive size: {layer}")
            if list(layer.inputs) != sorted(set(layer.inputs)) or any(not 0 <= j < i for j in layer.inputs):
                raise InvalidArchitectureError(
                    f"layer {i} inputs {list(layer.inputs)} must be distinct earlier layers "
                    f"in increasing order (0..{i - 1})"
                )

    @property
    def num_layers(self) -> int:
        """Number of convolutional layers."""
        return len(self.layers)

    def outputs(self) -> list[int]:
        """Layers whose outputs no later layer reads: they are sent to the classifier."""
        used = {j for layer in self.layers for j in layer.inputs}
        return [i for i in range(len(self.layers)) if i not in used]

    def to_str(self) -> str:
        """Return the canonical string (see the module docstring)."""
        return " | ".join(layer.to_str() for layer in self.layers)

    @classmethod
    def from_str(cls, text: str) -> CnnArchitecture:
        """Parse the canonical string form.

        Raises:
            InvalidArchitectureError: A layer does not match the grammar; the message names it.
        """
        layers = []
        for i, part in enumerate(text.strip().split("|")):
            match = _LAYER_RE.match(" ".join(part.split()))
            if match is None:
                raise InvalidArchitectureError(
                    f"cannot parse layer {i} {part.strip()!r} of {text!r}; expected "
                    "'{fh}x{fw}:{filters}[/s{stride}][ <i,j,...][ +pool]', e.g. '3x3:36 <0 +pool'"
                )
            inputs = match["inputs"]
            layers.append(
                ConvLayer(
                    filter_height=int(match["fh"]),
                    filter_width=int(match["fw"]),
                    num_filters=int(match["nf"]),
                    stride=int(match["stride"] or 1),
                    inputs=tuple(int(j) for j in inputs.split(",")) if inputs else (),
                    pool=match["pool"] is not None,
                )
            )
        return cls(tuple(layers))


@dataclass(frozen=True)
class CnnSearchSpace(SearchSpace[CnnArchitecture]):
    """The Zoph & Le CNN space for ``num_layers`` layers.

    Args:
        num_layers: Layers of the networks designed in this configuration (paper: 6, grown by 2).
        max_layers: Upper bound on ``num_layers``; fixes observation and action sizes.
        predict_stride: Whether a stride token {1, 2, 3} follows each layer's filter tokens.
        skip_connections: Whether anchor tokens choose each layer's inputs (else a plain chain).
        pool_after: 0-based layers after which a 2x2 max-pool is inserted (not searched).
        filter_offset: Added to every layer's chosen filters (the paper's "+40 filters" model).
    """

    num_layers: int = 6
    max_layers: int = 15
    predict_stride: bool = False
    skip_connections: bool = True
    pool_after: tuple[int, ...] = ()
    filter_offset: int = 0

    name = "cnn"

    def __post_init__(self) -> None:
        """Validate the configuration, naming any bad value."""
        check_range("max_layers", self.max_layers, 1, MAX_LAYERS_LIMIT)
        check_range("num_layers", self.num_layers, 1, self.max_layers)
        check_range("filter_offset", self.filter_offset, 0, 4096)
        for layer in self.pool_after:
            check_range("pool_after layer", layer, 0, self.max_layers - 1)
        object.__setattr__(self, "pool_after", tuple(sorted(set(self.pool_after))))

    def resized(self, num_layers: int) -> CnnSearchSpace:
        """The same space with another number of layers (the paper's growing depth)."""
        return replace(self, num_layers=num_layers)

    def _layer_steps(self, i: int) -> list[TokenSpec]:
        steps = [
            TokenSpec("filter_height", FILTER_SIZES, layer=i),
            TokenSpec("filter_width", FILTER_SIZES, layer=i),
            TokenSpec("num_filters", NUM_FILTERS, layer=i),
        ]
        if self.predict_stride:
            steps.append(TokenSpec("stride", STRIDES, layer=i))
        if self.skip_connections:
            steps += [TokenSpec("anchor", (0, 1), layer=i, anchor_of=j) for j in range(i)]
        return steps

    @cached_property
    def _schedule(self) -> tuple[TokenSpec, ...]:
        return tuple(s for i in range(self.num_layers) for s in self._layer_steps(i))

    def schedule(self) -> tuple[TokenSpec, ...]:
        """Token schedule for ``num_layers`` layers (a prefix of the one for more layers)."""
        return self._schedule

    @property
    def max_steps(self) -> int:
        """Steps of a ``max_layers``-layer episode."""
        return sum(len(self._layer_steps(i)) for i in range(self.max_layers))

    @property
    def max_vocab(self) -> int:
        """Four: the filter and width choices are the largest sets."""
        return max(len(FILTER_SIZES), len(NUM_FILTERS), len(STRIDES) if self.predict_stride else 0)

    def decode(self, tokens: Sequence[int]) -> CnnArchitecture:
        """Turn tokens into a ``CnnArchitecture`` (layers without chosen inputs read the image)."""
        sched = self.check_tokens(tokens)
        fields: list[dict[str, int]] = [{} for _ in range(self.num_layers)]
        inputs: list[list[int]] = [[] for _ in range(self.num_layers)]
        for tok, spec in zip(tokens, sched, strict=True):
            if spec.kind == "anchor":
                if tok:
                    inputs[spec.layer].append(int(spec.anchor_of))  # type: ignore[arg-type]
            else:
                fields[spec.layer][spec.kind] = int(spec.choices[int(tok)])
        layers = []
        for i, f in enumerate(fields):
            layer_inputs = tuple(inputs[i]) if self.skip_connections else ((i - 1,) if i else ())
            layers.append(
                ConvLayer(
                    filter_height=f["filter_height"],
                    filter_width=f["filter_width"],
                    num_filters=f["num_filters"] + self.filter_offset,
                    stride=f.get("stride", 1),
                    inputs=layer_inputs,
                    pool=i in self.pool_after,
                )
            )
        return CnnArchitecture(tuple(layers))

    def encode(self, arch: CnnArchitecture) -> list[int]:
        """Tokens of ``arch``; it must match this space's depth, offset, pooling and options."""
        if arch.num_layers != self.num_layers:
            raise InvalidArchitectureError(
                f"architecture has {arch.num_layers} layers, this space has num_layers={self.num_layers}"
            )
        tokens: list[int] = []
        for spec in self.schedule():
            layer = arch.layers[spec.layer]
            if spec.kind == "anchor":
                tokens.append(int(spec.anchor_of in layer.inputs))
                continue
            value = {
                "filter_height": layer.filter_height,
                "filter_width": layer.filter_width,
                "num_filters": layer.num_filters - self.filter_offset,
                "stride": layer.stride,
            }[spec.kind]
            if value not in spec.choices:
                raise InvalidArchitectureError(
                    f"layer {spec.layer}: {spec.kind}={value} is not one of {list(spec.choices)}"
                    + (
                        f" (after subtracting filter_offset={self.filter_offset})"
                        if spec.kind == "num_filters"
                        else ""
                    )
                )
            tokens.append(spec.choices.index(value))
        if self.decode(tokens) != arch:
            raise InvalidArchitectureError(
                f"{arch.to_str()!r} is not in this space (skip_connections={self.skip_connections}, "
                f"predict_stride={self.predict_stride}, pool_after={list(self.pool_after)})"
            )
        return tokens

    def parse(self, text: str) -> CnnArchitecture:
        """Parse a canonical CNN string (see the module docstring)."""
        return CnnArchitecture.from_str(text)
