"""The CNN supernet (nas_env/builders/supernet.py): a child on shared weights is the standalone network."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nas_env.builders.cnn import count_parameters
from nas_env.builders.supernet import CnnSupernet
from nas_env.errors import InvalidArchitectureError
from nas_env.search_spaces.cnn import CnnArchitecture, CnnSearchSpace

# strides, pooling and a filter offset exercise every geometry rule of build_cnn
SPACE = CnnSearchSpace(num_layers=5, max_layers=5, predict_stride=True, pool_after=(1,), filter_offset=4)


def random_archs(space: CnnSearchSpace, n: int, seed: int) -> list[CnnArchitecture]:
    rng = np.random.default_rng(seed)
    return [space.decode(space.sample(rng)) for _ in range(n)]


@pytest.mark.parametrize("image_size", [32, 8])
def test_child_forward_equals_the_standalone_model_with_the_same_weights(image_size: int) -> None:
    """Every child (random connections, strides, pooling, padding to the largest input, unread outputs
    to the classifier) computes exactly what build_cnn's network holding its slices computes."""
    torch.manual_seed(0)
    supernet = CnnSupernet(SPACE, seed=1)
    x = torch.randn(4, 3, image_size, image_size)
    for arch in random_archs(SPACE, 10, seed=image_size):
        child = supernet.export_child(arch, image_size=image_size).train()
        torch.testing.assert_close(supernet(x, arch), child(x), rtol=1e-5, atol=1e-5)
        assert supernet.num_params(arch) == count_parameters(child)


def test_gradients_are_the_standalone_gradients_on_the_childs_slices_only() -> None:
    supernet = CnnSupernet(SPACE, seed=2)
    arch = CnnArchitecture.from_str(
        "3x5:28 | 1x7:52/s2 <0 +pool | 5x5:68 <0,1 | 3x3:40/s3 <1,2 | 7x1:28 <0,3"
    )
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 3, 5, 9])
    child = supernet.export_child(arch).train()
    F.cross_entropy(supernet(x, arch), y).backward()
    F.cross_entropy(child(x), y).backward()
    layer3 = supernet.layers[3]
    grad = layer3.conv["3x3"].grad
    assert grad is not None and layer3.conv["5x5"].grad is None  # unused filter shapes are untouched
    # layer 3 (40 filters) reads 52 channels of layer 1's block (71..139) and 68 of layer 2's (139..207)
    used = grad[:40]
    torch.testing.assert_close(
        torch.cat([used[:, 71:123], used[:, 139:207]], 1), child.layers[3][0].weight.grad
    )
    unused = torch.ones(grad.shape[1], dtype=torch.bool)
    unused[71:123] = unused[139:207] = False
    assert grad[40:].abs().sum() == 0 and used[:, unused].abs().sum() == 0
    torch.testing.assert_close(layer3.bn_weight["3x3"].grad[:40], child.layers[3][1].weight.grad)
    torch.testing.assert_close(supernet.bias.grad, child.classifier.bias.grad)


def test_layers_grow_the_same_whatever_the_order() -> None:
    grown = CnnSupernet(SPACE.resized(2), seed=3)
    assert grown.num_layers == 2
    new = grown.grow(5)
    assert len(new) == 3 and grown.num_layers == 5
    direct = CnnSupernet(SPACE, seed=3)
    for (name, a), (_, b) in zip(grown.state_dict().items(), direct.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    other_seed = CnnSupernet(SPACE, seed=4)
    assert not torch.equal(other_seed.layers[0].conv["3x3"], direct.layers[0].conv["3x3"])
    with pytest.raises(InvalidArchitectureError, match="does not fit a supernet over max_layers=5"):
        grown.grow(6)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2x3:28", "filter_height=2 is not one of [1, 3, 5, 7]"),
        ("3x3:100", "num_filters=96 is not one of [24, 36, 48, 64] (after subtracting filter_offset=4)"),
        ("3x3:28 | 3x3:28 <0", "is not in this space"),  # pool_after=(1,) requires +pool on layer 1
    ],
)
def test_children_outside_the_space_are_rejected(text: str, message: str) -> None:
    supernet = CnnSupernet(SPACE, seed=0)
    with pytest.raises(InvalidArchitectureError, match=re.escape(message)):
        supernet(torch.randn(2, 3, 32, 32), CnnArchitecture.from_str(text))
