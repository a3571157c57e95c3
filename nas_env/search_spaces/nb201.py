"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020, https://arxiv.org/abs/2001.00326).

A cell is a DAG of 4 nodes; node 0 is the cell's input, node 3 its output, and every edge
``j -> i`` (``j < i``) carries one of five operations. One token per edge, in NB201's edge order::

    step   0       1       2       3       4       5
    edge   0 -> 1  0 -> 2  1 -> 2  0 -> 3  1 -> 3  2 -> 3

so ``5**6 = 15,625`` cells. Architectures are written in NB201's own string form: node by node,
``|op~j|`` for each input ``j``, nodes joined by ``+``::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

>>> text = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"
>>> arch = NB201Architecture.from_str(text)
>>> arch.ops[2], arch.index, NB201SearchSpace().encode(arch)
('skip_connect', 9602, [3, 0, 1, 4, 0, 2])
>>> NB201SearchSpace().decode([3, 0, 1, 4, 0, 2]) == arch, arch.to_str() == text
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nas_env.errors import InvalidArchitectureError
from nas_env.records import TokenSpec
from nas_env.search_spaces.base import SearchSpace

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""NB201's operations, in its order; token ``t`` selects ``OPS[t]``."""
NUM_NODES = 4
"""Nodes of a cell: the input, two intermediate nodes, the output."""
EDGES: tuple[tuple[int, int], ...] = tuple((i, j) for i in range(1, NUM_NODES) for j in range(i))
"""``(to, from)`` of every edge, in token order: (1,0), (2,0), (2,1), (3,0), (3,1), (3,2)."""
NUM_CELLS = len(OPS) ** len(EDGES)
"""15,625 cells in the space."""
_OP_INDEX = {op: i for i, op in enumerate(OPS)}


@dataclass(frozen=True)
class NB201Architecture:
    """A NAS-Bench-201 cell: the operation on each of the 6 edges, in :data:`EDGES` order."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        """Check that there are 6 edges and each names an NB201 operation."""
        if len(self.ops) != len(EDGES):
            raise InvalidArchitectureError(f"an NB201 cell has {len(EDGES)} edges, got {len(self.ops)} ops")
        for (i, j), op in zip(EDGES, self.ops, strict=True):
            if op not in _OP_INDEX:
                raise InvalidArchitectureError(
                    f"edge {j} -> {i}: unknown operation {op!r}; expected one of {list(OPS)}"
                )

    @property
    def tokens(self) -> list[int]:
        """The token sequence (operation index per edge)."""
        return [_OP_INDEX[op] for op in self.ops]

    @property
    def index(self) -> int:
        """Position in ``range(15625)``: the tokens read as a base-5 number, first edge most significant."""
        value = 0
        for op in self.ops:
            value = value * len(OPS) + _OP_INDEX[op]
        return value

    @classmethod
    def from_index(cls, index: int) -> NB201Architecture:
        """Inverse of :attr:`index`.

        Raises:
            InvalidArchitectureError: ``index`` is not in ``range(15625)``.
        """
        if not 0 <= index < NUM_CELLS:
            raise InvalidArchitectureError(f"cell index {index} is out of range; expected 0..{NUM_CELLS - 1}")
        ops = []
        for _ in EDGES:
            index, t = divmod(index, len(OPS))
            ops.append(OPS[t])
        return cls(tuple(reversed(ops)))

    def node_inputs(self, node: int) -> list[tuple[int, str]]:
        """``(from_node, op)`` of every edge into ``node`` (1..3)."""
        return [(j, op) for (i, j), op in zip(EDGES, self.ops, strict=True) if i == node]

    def to_str(self) -> str:
        """NB201's string form, e.g. ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...~0|...~1|...~2|``."""
        nodes = ("|".join(f"{op}~{j}" for j, op in self.node_inputs(i)) for i in range(1, NUM_NODES))
        return "|" + "|+|".join(nodes) + "|"

    @classmethod
    def from_str(cls, text: str) -> NB201Architecture:
        """Parse NB201's string form (surrounding whitespace is ignored).

        Raises:
            InvalidArchitectureError: The string does not follow the form; the message says where.
        """
        example = "'|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|'"
        parts = text.strip().split("+")
        if len(parts) != NUM_NODES - 1:
            raise InvalidArchitectureError(
                f"{text!r} has {len(parts)} node(s) separated by '+'; an NB201 cell has "
                f"{NUM_NODES - 1}, e.g. {example}"
            )
        ops: list[str] = []
        for node, part in enumerate(parts, start=1):
            if len(part) < 2 or part[0] != "|" or part[-1] != "|":
                raise InvalidArchitectureError(
                    f"node {node} of {text!r} ({part!r}) must start and end with '|'"
                )
            entries = part[1:-1].split("|")
            if len(entries) != node:
                raise InvalidArchitectureError(
                    f"node {node} of {text!r} has {len(entries)} input(s) {entries}; expected {node}"
                )
            for j, entry in enumerate(entries):
                op, sep, src = entry.partition("~")
                if not sep or src != str(j):
                    raise InvalidArchitectureError(
                        f"node {node} of {text!r}: input {entry!r} must be 'op~{j}' "
                        f"(inputs in order 0..{node - 1})"
                    )
                if op not in _OP_INDEX:
                    raise InvalidArchitectureError(
                        f"node {node} of {text!r}: unknown operation {op!r}; expected one of {list(OPS)}"
                    )
                ops.append(op)
        return cls(tuple(ops))


class NB201SearchSpace(SearchSpace[NB201Architecture]):
    """Six tokens, one operation per edge of the NB201 cell (see the module docstring).

    Every step has all five choices, so masks are all True; the size is fixed.
    """

    name = "nb201"
    _SCHEDULE: tuple[TokenSpec, ...] = tuple(TokenSpec("op", OPS, layer=i) for i, _ in EDGES)

    def schedule(self) -> tuple[TokenSpec, ...]:
        """Six ``op`` tokens; ``layer`` is the node the edge leads to."""
        return self._SCHEDULE

    @property
    def max_steps(self) -> int:
        """Six steps, one per edge."""
        return len(EDGES)

    @property
    def max_vocab(self) -> int:
        """Five operations."""
        return len(OPS)

    def decode(self, tokens: Sequence[int]) -> NB201Architecture:
        """Turn six operation indices into a cell."""
        self.check_tokens(tokens)
        return NB201Architecture(tuple(OPS[int(t)] for t in tokens))

    def encode(self, arch: NB201Architecture) -> list[int]:
        """The six operation indices of ``arch``."""
        if not isinstance(arch, NB201Architecture):
            raise InvalidArchitectureError(f"expected an NB201Architecture, got {type(arch).__name__}")
        return arch.tokens

    def parse(self, text: str) -> NB201Architecture:
        """Parse NB201's string form (see :meth:`NB201Architecture.from_str`)."""
        return NB201Architecture.from_str(text)
