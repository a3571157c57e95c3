"""Recurrent-cell search space: schedule, masks, tokens <-> architecture <-> string round trips, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas_env.errors import InvalidArchitectureError
from nas_env.search_spaces.rnn_cell import (
    NASCELL,
    TANH_RNN,
    CellMemory,
    CellNode,
    RnnCellArchitecture,
    RnnCellSearchSpace,
)

PAPER_BASE2 = "add:tanh mul:relu / mul:sigmoid ; c_in 0 add:relu ; c_out 1"


@st.composite
def spaces_and_tokens(draw: st.DrawFn) -> tuple[RnnCellSearchSpace, list[int]]:
    space = RnnCellSearchSpace(base=draw(st.sampled_from([2, 4, 8])), memory=draw(st.booleans()))
    return space, [draw(st.integers(0, s.num_choices - 1)) for s in space.schedule()]


@settings(max_examples=300, deadline=None)
@given(spaces_and_tokens())
def test_tokens_arch_string_round_trip(case: tuple[RnnCellSearchSpace, list[int]]) -> None:
    space, tokens = case
    arch = space.decode(tokens)
    text = arch.to_str()
    assert RnnCellArchitecture.from_str(text) == arch
    assert RnnCellArchitecture.from_str(text).to_str() == text
    assert space.parse(text) == arch
    assert space.encode(arch) == tokens


def test_named_cells_round_trip_and_parse_by_name() -> None:
    for arch, name in ((NASCELL, "nascell"), (TANH_RNN, "tanh_rnn")):
        assert RnnCellArchitecture.from_str(arch.to_str()) == arch
        assert RnnCellSearchSpace(arch.base, arch.memory is not None).parse(name) == arch
    space = RnnCellSearchSpace()
    assert space.decode(space.encode(NASCELL)) == NASCELL
    assert NASCELL.memory == CellMemory(8, CellNode("add", "tanh"), 12)
    assert NASCELL.locate(8) == (1, 0) and NASCELL.locate(12) == (2, 0) and NASCELL.locate(14) == (3, 0)


def test_paper_base2_example_tokens() -> None:
    # Figure 5 of the paper: tree index 0 = add/tanh, 1 = elem_mult/relu, cell inject add/relu at
    # index 0, tree index 2 = elem_mult/sigmoid, c_t = index 1 before its activation.
    space = RnnCellSearchSpace(base=2)
    arch = space.parse(PAPER_BASE2)
    assert space.encode(arch) == [0, 1, 1, 3, 1, 2, 0, 0, 3, 1]
    kinds = [s.kind for s in space.schedule()]
    assert kinds == ["combination", "activation"] * 3 + [
        "inject_node",
        "inject_combination",
        "inject_activation",
        "cell_output_node",
    ]
    # Extra spaces are tolerated; the canonical form is unique.
    assert (
        RnnCellArchitecture.from_str("  add:tanh   mul:relu/mul:sigmoid;c_in 0 add:relu;  c_out 1 ") == arch
    )


def test_schedule_sizes() -> None:
    assert (RnnCellSearchSpace(8).max_steps, RnnCellSearchSpace(8).max_vocab) == (34, 15)
    assert (RnnCellSearchSpace(4).max_steps, RnnCellSearchSpace(4).max_vocab) == (18, 7)
    assert (RnnCellSearchSpace(2).max_steps, RnnCellSearchSpace(2).max_vocab) == (10, 4)
    assert RnnCellSearchSpace(8, memory=False).max_steps == 30


def test_masks_never_all_false_and_sized_by_vocab() -> None:
    for base in (2, 4, 8):
        space = RnnCellSearchSpace(base)
        for step, spec in enumerate(space.schedule()):
            mask = space.mask(step)
            assert mask.shape == (space.max_vocab,) and mask.any() and mask.sum() == spec.num_choices


def test_random_walks_decode() -> None:
    rng = np.random.default_rng(0)
    for base in (2, 4, 8):
        space = RnnCellSearchSpace(base)
        for _ in range(50):
            assert space.decode(space.sample(rng)).base == base


@pytest.mark.parametrize("base", [0, 1, 3, 16, "8"])
def test_bad_base(base: object) -> None:
    with pytest.raises(
        ValueError, match=re.escape(f"base={base!r} is not allowed; expected one of [2, 4, 8]")
    ):
        RnnCellSearchSpace(base=base)  # type: ignore[arg-type]


def test_bad_memory_flag() -> None:
    with pytest.raises(ValueError, match="memory='yes' must be True or False"):
        RnnCellSearchSpace(memory="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("add:tanh mul:relu", "the last level must be one root node"),
        ("add:tanh mul:relu add:tanh / mul:tanh", "level 0 has 3 nodes"),
        ("add:tanh / mul:tanh", "level 0 has 1 nodes; the number of leaves must be"),
        ("add:tanh mul:relu / sub:tanh", "unknown node operation sub:tanh"),
        ("add:tanh mul:relu / mul:gelu", "unknown node operation mul:gelu"),
        ("add:tanh mul:relu / mul-tanh", "cannot parse node operation 'mul-tanh'"),
        ("add:tanh mul:relu / mul:tanh ; c_in 0 add:relu", "expected 'TREE' or 'TREE ; c_in NODE"),
        ("add:tanh mul:relu / mul:tanh ; inject 0 add:relu ; c_out 1", "cannot parse memory blocks"),
        ("add:tanh mul:relu / mul:tanh ; c_in 3 add:relu ; c_out 1", "inject_node=3 is not a node"),
        ("add:tanh mul:relu / mul:tanh ; c_in 0 add:relu ; c_out 7", "output_node=7 is not a node"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArchitectureError, match=re.escape(message)):
        RnnCellArchitecture.from_str(text)


def test_decode_and_encode_errors() -> None:
    space = RnnCellSearchSpace(base=2)
    with pytest.raises(InvalidArchitectureError, match="expected 10 tokens, got 3"):
        space.decode([0, 0, 0])
    with pytest.raises(
        InvalidArchitectureError, match=re.escape("token 4 at step 1 (activation) is out of range")
    ):
        space.decode([0, 4, 0, 0, 0, 0, 0, 0, 0, 0])
    with pytest.raises(InvalidArchitectureError, match="is not in this space"):
        space.encode(NASCELL)
    with pytest.raises(InvalidArchitectureError, match="is not in this space"):
        space.encode(TANH_RNN)  # no memory blocks
    with pytest.raises(ValueError, match="fixed size"):
        space.resized(3)
