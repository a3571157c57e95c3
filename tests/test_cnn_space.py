"""CNN search space: schedule, masks, tokens <-> architecture <-> string round trips."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas_env.errors import InvalidArchitectureError
from nas_env.search_spaces.cnn import CnnArchitecture, CnnSearchSpace, ConvLayer


@st.composite
def spaces_and_tokens(draw: st.DrawFn) -> tuple[CnnSearchSpace, list[int]]:
    max_layers = draw(st.integers(1, 15))
    space = CnnSearchSpace(
        num_layers=draw(st.integers(1, max_layers)),
        max_layers=max_layers,
        predict_stride=draw(st.booleans()),
        skip_connections=draw(st.booleans()),
        pool_after=tuple(draw(st.lists(st.integers(0, max_layers - 1), max_size=3))),
        filter_offset=draw(st.sampled_from([0, 40])),
    )
    tokens = [draw(st.integers(0, s.num_choices - 1)) for s in space.schedule()]
    return space, tokens


@settings(max_examples=200, deadline=None)
@given(spaces_and_tokens())
def test_tokens_arch_string_round_trip(case: tuple[CnnSearchSpace, list[int]]) -> None:
    space, tokens = case
    arch = space.decode(tokens)
    text = arch.to_str()
    assert CnnArchitecture.from_str(text) == arch
    assert CnnArchitecture.from_str(text).to_str() == text
    assert space.encode(arch) == tokens


def test_schedule_of_six_layers_matches_paper_layout() -> None:
    space = CnnSearchSpace()
    sched = space.schedule()
    # 3 filter tokens per layer + one anchor per earlier layer: 18 + 15.
    assert len(sched) == 33
    assert [s.kind for s in sched[:6]] == ["filter_height", "filter_width", "num_filters"] * 2
    assert sched[6].kind == "anchor" and sched[6].layer == 1 and sched[6].anchor_of == 0
    # The schedule for n layers is a prefix of the one for more layers.
    assert space.resized(8).schedule()[:33] == sched
    assert space.max_steps == 45 + 105


def test_masks_never_all_false_and_sized_by_vocab() -> None:
    space = CnnSearchSpace(predict_stride=True)
    for step, spec in enumerate(space.schedule()):
        mask = space.mask(step)
        assert mask.shape == (space.max_vocab,) and mask.any()
        assert mask.sum() == spec.num_choices


def test_layer_without_inputs_reads_image_and_chain_mode() -> None:
    chain = CnnSearchSpace(num_layers=3, skip_connections=False)
    arch = chain.decode([1, 1, 1] * 3)
    assert [layer.inputs for layer in arch.layers] == [(), (0,), (1,)]
    assert arch.outputs() == [2]
    skip = CnnSearchSpace(num_layers=3)
    # layer 1 picks nothing (reads the image), layer 2 reads layer 0 only: outputs 1 and 2 unused.
    arch = skip.decode([0, 0, 0] + [0, 0, 0, 0] + [0, 0, 0, 1, 0])
    assert arch.layers[1].inputs == () and arch.layers[2].inputs == (0,)
    assert arch.outputs() == [1, 2]


def test_offset_and_pooling_are_in_the_string() -> None:
    space = CnnSearchSpace(num_layers=2, pool_after=(0,), filter_offset=40)
    arch = space.decode([1, 1, 1, 1, 1, 1, 1])
    assert arch.to_str() == "3x3:76 +pool | 3x3:76 <0"


def test_canonical_example_parses() -> None:
    arch = CnnArchitecture.from_str("3x3:36 | 5x3:48 <0 | 3x7:64/s2 <0,1 +pool")
    assert arch.layers[2] == ConvLayer(3, 7, 64, 2, (0, 1), True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3x3:36 | 3x3", "cannot parse layer 1 '3x3'"),
        ("3x3:36 <1", "layer 0 inputs [1] must be distinct earlier layers"),
        ("3x3:36 | 3x3:36 <0,0", "layer 1 inputs [0, 0]"),
        ("", "cannot parse layer 0"),
    ],
)
def test_bad_strings_raise_clear_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArchitectureError, match=re.escape(message)):
        CnnArchitecture.from_str(text)


def test_encode_rejects_architectures_outside_the_space() -> None:
    space = CnnSearchSpace(num_layers=1)
    with pytest.raises(InvalidArchitectureError, match="num_filters=30 is not one of"):
        space.encode(CnnArchitecture.from_str("3x3:30"))
    with pytest.raises(InvalidArchitectureError, match="2 layers"):
        space.encode(CnnArchitecture.from_str("3x3:36 | 3x3:36"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_layers": 0}, "num_layers=0 is out of range; expected an integer in [1, 15]"),
        ({"num_layers": 16}, "num_layers=16 is out of range"),
        ({"max_layers": 100}, "max_layers=100 is out of range; expected an integer in [1, 64]"),
        ({"pool_after": (20,)}, "pool_after layer=20 is out of range"),
    ],
)
def test_bad_space_kwargs(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        CnnSearchSpace(**kwargs)


def test_sample_is_seeded() -> None:
    space = CnnSearchSpace()
    a = space.sample(np.random.default_rng(3))
    assert a == space.sample(np.random.default_rng(3))
    assert len(a) == len(space.schedule())
