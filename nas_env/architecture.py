"""Architectures as frozen records with one canonical, round-tripping string form.

CNN architectures (Zoph & Le 2017, sections 3.1 and 3.3) are written layer by layer, layers
joined by ``" | "``::

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
from dataclasses import dataclass

from nas_env.errors import InvalidArchitectureError

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
