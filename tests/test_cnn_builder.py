"""Every valid token sequence builds a child whose forward pass gives [batch, 10] logits."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas_env.builders.cnn import build_cnn, count_parameters
from nas_env.search_spaces.cnn import CnnArchitecture, CnnSearchSpace


@st.composite
def architectures(draw: st.DrawFn) -> CnnArchitecture:
    max_layers = 15
    space = CnnSearchSpace(
        num_layers=draw(st.integers(1, max_layers)),
        max_layers=max_layers,
        predict_stride=draw(st.booleans()),
        skip_connections=draw(st.booleans()),
        pool_after=tuple(draw(st.lists(st.integers(0, max_layers - 1), max_size=4))),
    )
    tokens = [draw(st.integers(0, s.num_choices - 1)) for s in space.schedule()]
    return space.decode(tokens)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(architectures(), st.integers(1, 3))
def test_any_valid_architecture_builds_and_runs(arch: CnnArchitecture, batch: int) -> None:
    model = build_cnn(arch)
    with torch.inference_mode():
        logits = model.eval()(torch.randn(batch, 3, 32, 32))
    assert logits.shape == (batch, 10)
    assert torch.isfinite(logits).all()
    assert count_parameters(model) > 0


def test_zero_padding_rule_matches_explicit_padding() -> None:
    """Pooling each output and scaling by its area equals pooling the zero-padded concatenation."""
    arch = CnnArchitecture.from_str("3x3:24 | 3x3:24/s2 <0 | 3x3:36 <0")  # outputs 1 (16x16) and 2 (32x32)
    model = build_cnn(arch).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        out0 = model.layers[0](x)
        out1, out2 = model.layers[1](out0), model.layers[2](out0)
        padded = torch.nn.functional.pad(out1, (0, 16, 0, 16))
        pooled = torch.cat([padded, out2], 1).mean((2, 3))
        expected = model.classifier(pooled)
        assert torch.allclose(model(x), expected, atol=1e-5)


def test_skip_inputs_are_concatenated_along_channels() -> None:
    model = build_cnn(CnnArchitecture.from_str("3x3:24 | 3x3:36 | 1x1:48 <0,1"))
    assert model.layers[2][0].in_channels == 24 + 36
    assert model.classifier.in_features == 48
