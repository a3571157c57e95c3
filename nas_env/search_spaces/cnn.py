"""The CNN macro search space of Zoph & Le (2017), sections 3.1 and 3.3.

Per layer the agent picks, one token per step: filter height, filter width, number of filters,
optionally the stride, then (with skip connections) one yes/no token per earlier layer ``j``
saying whether ``j`` feeds this layer (the paper's anchor points).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

from nas_env.architecture import CnnArchitecture, ConvLayer
from nas_env.errors import InvalidArchitectureError, check_range
from nas_env.search_spaces.base import SearchSpace
from nas_env.type_aliases import TokenSpec

FILTER_SIZES: tuple[int, ...] = (1, 3, 5, 7)
"""Filter heights and widths (paper section 4.1)."""
NUM_FILTERS: tuple[int, ...] = (24, 36, 48, 64)
"""Numbers of filters (paper section 4.1)."""
STRIDES: tuple[int, ...] = (1, 2, 3)
"""Strides when they are predicted (paper section 4.1, "predicting strides")."""
MAX_LAYERS_LIMIT = 64
"""Largest ``max_layers`` accepted (observation size grows with its square)."""


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
        """Parse a canonical CNN string (see :mod:`nas_env.architecture`)."""
        return CnnArchitecture.from_str(text)
