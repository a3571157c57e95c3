"""Build a torch ``nn.Module`` from a :class:`~nas_env.search_spaces.cnn.CnnArchitecture`.

Each layer is conv (same padding) -> batch norm -> ReLU [-> 2x2 max-pool]. The paper's rules
(section 3.3) make every architecture buildable: a layer without inputs reads the image; inputs of
different spatial sizes are zero-padded (bottom/right) to the largest before being concatenated
along channels; every output that no layer reads goes to the classifier the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas_env.search_spaces.cnn import CnnArchitecture

IMAGE_CHANNELS = 3


def conv_output_size(size: int, kernel: int, stride: int) -> int:
    """Spatial size after a same-padded convolution (padding ``kernel // 2``)."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


class CnnChild(nn.Module):
    """The child network of a CNN architecture.

    Args:
        arch: The architecture.
        num_classes: Classifier outputs.
        image_size: Input height and width (CIFAR: 32); spatial sizes are precomputed from it.
    """

    _output_scale: torch.Tensor

    def __init__(self, arch: CnnArchitecture, num_classes: int = 10, image_size: int = 32) -> None:
        """Create the layers and precompute every padding the connection rules need."""
        super().__init__()
        self.arch = arch
        self.layers = nn.ModuleList()
        sizes: list[tuple[int, int]] = []  # (height, width) of each layer's output
        channels: list[int] = []
        self._paddings: list[list[tuple[int, int, int, int]]] = []
        for layer in arch.layers:
            if layer.inputs:
                in_sizes = [sizes[j] for j in layer.inputs]
                in_ch = sum(channels[j] for j in layer.inputs)
            else:
                in_sizes = [(image_size, image_size)]
                in_ch = IMAGE_CHANNELS
            height, width = max(s[0] for s in in_sizes), max(s[1] for s in in_sizes)
            self._paddings.append([(0, width - w, 0, height - h) for h, w in in_sizes])
            block: list[nn.Module] = [
                nn.Conv2d(
                    in_ch,
                    layer.num_filters,
                    (layer.filter_height, layer.filter_width),
                    stride=layer.stride,
                    padding=(layer.filter_height // 2, layer.filter_width // 2),
                    bias=False,
                ),
                nn.BatchNorm2d(layer.num_filters),
                nn.ReLU(inplace=True),
            ]
            height = conv_output_size(height, layer.filter_height, layer.stride)
            width = conv_output_size(width, layer.filter_width, layer.stride)
            if layer.pool:
                block.append(nn.MaxPool2d(2, 2, ceil_mode=True))
                height, width = -(-height // 2), -(-width // 2)
            self.layers.append(nn.Sequential(*block))
            sizes.append((height, width))
            channels.append(layer.num_filters)
        self._outputs = arch.outputs()
        # Global average pooling of a zero-padded map equals the plain mean scaled by the area
        # ratio, so outputs are pooled one by one without materialising the padding.
        top_h = max(sizes[i][0] for i in self._outputs)
        top_w = max(sizes[i][1] for i in self._outputs)
        scale = [sizes[i][0] * sizes[i][1] / (top_h * top_w) for i in self._outputs]
        self.register_buffer(
            "_output_scale",
            torch.cat([torch.full((channels[i],), s) for i, s in zip(self._outputs, scale, strict=True)]),
            persistent=False,
        )
        self.classifier = nn.Linear(sum(channels[i] for i in self._outputs), num_classes)

    def _gather(
        self, outs: list[torch.Tensor], inputs: tuple[int, ...], pads: list[tuple[int, int, int, int]]
    ) -> torch.Tensor:
        parts = [F.pad(outs[j], p) if any(p) else outs[j] for j, p in zip(inputs, pads, strict=True)]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits of shape ``[batch, num_classes]``."""
        outs: list[torch.Tensor] = []
        for layer, block, pads in zip(self.arch.layers, self.layers, self._paddings, strict=True):
            inp = self._gather(outs, layer.inputs, pads) if layer.inputs else x
            outs.append(block(inp))
        pooled = torch.cat([outs[i].mean(dim=(2, 3)) for i in self._outputs], dim=1)
        return self.classifier(pooled * self._output_scale)


def build_cnn(arch: CnnArchitecture, num_classes: int = 10, image_size: int = 32) -> CnnChild:
    """Build the child network of ``arch`` (see :class:`CnnChild`)."""
    return CnnChild(arch, num_classes=num_classes, image_size=image_size)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
