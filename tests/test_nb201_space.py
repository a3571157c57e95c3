"""NB201 cell space and network: schedule, string round trips, parse errors, the built network."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nas_env.builders.cnn import count_parameters
from nas_env.builders.nb201 import InferCell, build_nb201, live_edges
from nas_env.errors import InvalidArchitectureError
from nas_env.search_spaces.nb201 import EDGES, NUM_CELLS, OPS, NB201Architecture, NB201SearchSpace

BEST_LOOKING = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)


def test_schedule_is_six_op_tokens_in_nb201_edge_order() -> None:
    space = NB201SearchSpace()
    sched = space.schedule()
    assert [s.kind for s in sched] == ["op"] * 6
    assert [s.layer for s in sched] == [1, 2, 2, 3, 3, 3]
    assert all(s.choices == OPS and s.anchor_of is None for s in sched)
    assert EDGES == ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
    assert (space.max_steps, space.max_vocab, NUM_CELLS) == (6, 5, 15_625)
    assert all(space.mask(step).all() and space.mask(step).shape == (5,) for step in range(6))
    with pytest.raises(ValueError, match="fixed size"):
        space.resized(3)


def test_every_cell_round_trips_through_tokens_index_and_string() -> None:
    space = NB201SearchSpace()
    seen = set()
    for index in range(NUM_CELLS):
        arch = NB201Architecture.from_index(index)
        text = arch.to_str()
        assert arch.index == index
        assert NB201Architecture.from_str(text) == arch
        assert space.decode(space.encode(arch)) == arch
        seen.add(text)
    assert len(seen) == NUM_CELLS


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=6, max_size=6))
def test_tokens_arch_string_round_trip(tokens: list[int]) -> None:
    space = NB201SearchSpace()
    arch = space.decode(tokens)
    assert space.parse(arch.to_str()) == arch and space.encode(arch) == tokens
    assert arch.index == int("".join(map(str, tokens)), 5)


def test_string_form_is_nb201s() -> None:
    arch = NB201Architecture.from_str(f"  {BEST_LOOKING}\n")
    assert arch.ops == (
        "nor_conv_3x3",
        "nor_conv_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "nor_conv_3x3",
        "skip_connect",
    )
    assert arch.to_str() == BEST_LOOKING
    assert arch.node_inputs(2) == [(0, "nor_conv_3x3"), (1, "avg_pool_3x3")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("|nor_conv_3x3~0|+|none~0|none~1|", "has 2 node(s) separated by '+'; an NB201 cell has 3"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 of "),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 of '|none~0|+|none~0|+"),
        ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "input 'none~1' must be 'op~0'"),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "must start and end with '|'"),
        ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "input 'none0' must be 'op~0'"),
    ],
)
def test_malformed_strings_raise_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(InvalidArchitectureError, match=re.escape(message)):
        NB201Architecture.from_str(text)


def test_unknown_op_and_bad_tokens_raise() -> None:
    with pytest.raises(
        InvalidArchitectureError, match=re.escape("unknown operation 'conv'; expected one of")
    ):
        NB201Architecture.from_str("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(InvalidArchitectureError, match="expected 6 tokens, got 5"):
        NB201SearchSpace().decode([0] * 5)
    with pytest.raises(InvalidArchitectureError, match="token 5 at step 2"):
        NB201SearchSpace().decode([0, 0, 5, 0, 0, 0])
    with pytest.raises(InvalidArchitectureError, match=re.escape("cell index 15625 is out of range")):
        NB201Architecture.from_index(NUM_CELLS)


def test_parameter_counts_match_nb201s_range() -> None:
    """NB201 reports 0.07 MB to 1.53 MB of parameters for its CIFAR-10 networks."""
    smallest = build_nb201(NB201Architecture(("none",) * 6))
    largest = build_nb201(NB201Architecture(("nor_conv_3x3",) * 6))
    assert round(count_parameters(smallest) / 1e6, 2) == 0.07
    assert round(count_parameters(largest) / 1e6, 2) == 1.53


def full_cell_forward(cell: InferCell, arch: NB201Architecture, x: torch.Tensor) -> torch.Tensor:
    """NB201's InferCell.forward: every edge computed and summed, nothing skipped."""
    nodes = [x]
    for i in range(1, 4):
        nodes.append(sum(cell.edges[k](nodes[j]) for k, (to, j) in enumerate(EDGES) if to == i))
    return nodes[3]


@pytest.mark.parametrize("seed", range(8))
def test_skipping_dead_edges_does_not_change_the_cell_output(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tokens = [int(t) for t in rng.integers(0, 5, 6)]
    tokens[rng.integers(0, 6)] = 0  # at least one `none` edge
    arch = NB201SearchSpace().decode(tokens)
    torch.manual_seed(seed)
    cell = InferCell(arch, 4)
    for module in cell.modules():  # non-trivial BN shifts, so zeros through a conv are not zeros
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.normal_(module.bias)
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(cell(x), full_cell_forward(cell, arch, x))


def test_dead_edges_are_pruned() -> None:
    # node 1 feeds nothing that reaches node 3 (edges 1->2 and 1->3 are none, 0->2 as well)
    arch = NB201Architecture.from_str(
        "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
    )
    assert live_edges(arch) == [3, 5]  # 0->3 and 2->3 (node 2 only gets zeros, its conv still counts)


@pytest.mark.parametrize("text", [BEST_LOOKING, "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"])
def test_network_forward_and_backward_on_cifar_sized_input(text: str) -> None:
    torch.manual_seed(0)
    model = build_nb201(NB201Architecture.from_str(text))
    logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert model.classifier.weight.grad is not None
