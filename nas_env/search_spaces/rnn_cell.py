"""The recurrent-cell search space of Zoph & Le (2017), section 3.4 (Penn Treebank).

A cell computes ``h_t`` and a memory ``c_t`` from ``x_t``, ``h_{t-1}`` and ``c_{t-1}`` by a
complete binary tree with ``base`` leaves (paper: 8). Nodes are numbered as in the paper's
figure 5 and TensorFlow's ``NASCell``: leaves ``0..base-1``, then each level above from left to
right, the root last (``2 * base - 2``). Leaf ``i`` combines its own projections ``W_i x_t`` and
``U_i h_{t-1} + b_i``; an inner node combines the outputs of its two children. Every node applies
a combination {add, mul} and then an activation {identity, tanh, sigmoid, relu}; the root's output
is ``h_t``.

The two memory blocks: *cell inject* merges ``c_{t-1}`` into the output of one node,
``out <- act(comb(out, c_{t-1}))`` (what the node's parent then reads), and *cell output* says
which node's value before its activation becomes ``c_t``.

Canonical string: the nodes' ``comb:act`` level by level (levels joined by ``" / "``, leaves
first), then the memory blocks::

    add:tanh mul:relu / mul:sigmoid ; c_in 0 add:relu ; c_out 1

is the paper's base-2 example (figure 5): ``a0 = tanh(W1 x + W2 h)``, ``a1 = relu(W3 x * W4 h)``,
``a0 <- relu(a0 + c_{t-1})``, ``h_t = sigmoid(a0 * a1)``, ``c_t = W3 x * W4 h``. A cell without
memory blocks (``memory=False`` spaces, e.g. the plain tanh RNN) omits the ``;`` parts.

Token schedule (static): for each node in index order its combination then its activation;
then (with memory) the inject node, inject combination, inject activation and the cell-output
node. Base 8 has 2 * 15 + 4 = 34 steps.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from nas_env.errors import InvalidArchitectureError, check_choice
from nas_env.records import TokenSpec
from nas_env.search_spaces.base import SearchSpace

COMBINATIONS: tuple[str, ...] = ("add", "mul")
"""How a node merges its two inputs (paper section 3.4: addition, elementwise multiplication)."""
ACTIVATIONS: tuple[str, ...] = ("identity", "tanh", "sigmoid", "relu")
"""A node's activation (paper section 3.4)."""
BASES: tuple[int, ...] = (2, 4, 8)
"""Numbers of leaves the search space accepts (paper: 8)."""

_OP_RE = re.compile(r"^(?P<comb>[a-z]+):(?P<act>[a-z]+)$")
_INJECT_RE = re.compile(r"^c_in (?P<node>\d+) (?P<op>\S+)$")
_OUTPUT_RE = re.compile(r"^c_out (?P<node>\d+)$")


@dataclass(frozen=True)
class CellNode:
    """One tree node: ``activation(combination(left, right))``."""

    combination: str
    """``"add"`` or ``"mul"``."""
    activation: str
    """``"identity"``, ``"tanh"``, ``"sigmoid"`` or ``"relu"``."""

    def __post_init__(self) -> None:
        """Reject unknown operation names."""
        if self.combination not in COMBINATIONS or self.activation not in ACTIVATIONS:
            raise InvalidArchitectureError(
                f"unknown node operation {self.combination}:{self.activation}; expected "
                f"combination in {list(COMBINATIONS)} and activation in {list(ACTIVATIONS)}"
            )

    def to_str(self) -> str:
        """``comb:act``."""
        return f"{self.combination}:{self.activation}"

    @classmethod
    def from_str(cls, text: str) -> CellNode:
        """Parse ``comb:act``.

        Raises:
            InvalidArchitectureError: Not of that form or unknown names.
        """
        match = _OP_RE.match(text)
        if match is None:
            raise InvalidArchitectureError(f"cannot parse node operation {text!r}; expected e.g. 'add:tanh'")
        return cls(match["comb"], match["act"])


@dataclass(frozen=True)
class CellMemory:
    """The two memory blocks: where ``c_{t-1}`` goes in and where ``c_t`` comes out."""

    inject_node: int
    """Node whose output is merged with ``c_{t-1}``."""
    inject: CellNode
    """How it is merged: ``out <- act(comb(out, c_{t-1}))``."""
    output_node: int
    """Node whose value before its activation becomes ``c_t``."""


@dataclass(frozen=True)
class RnnCellArchitecture:
    """A recurrent cell of the Zoph & Le space: a tree of ``2 * base - 1`` nodes and its memory."""

    nodes: tuple[CellNode, ...]
    """Every node in index order: leaves first, root last."""
    memory: CellMemory | None = None
    """The memory blocks; ``None`` for a cell without ``c`` (e.g. the plain tanh RNN)."""

    def __post_init__(self) -> None:
        """Check the tree size and the memory node indices."""
        base = (len(self.nodes) + 1) // 2
        if base < 2 or base & (base - 1) or len(self.nodes) != 2 * base - 1:
            raise InvalidArchitectureError(
                f"a cell tree has 2 * base - 1 nodes with base a power of two >= 2; got {len(self.nodes)}"
            )
        if self.memory is not None:
            for name in ("inject_node", "output_node"):
                node = getattr(self.memory, name)
                if not 0 <= node < len(self.nodes):
                    raise InvalidArchitectureError(
                        f"{name}={node} is not a node of a base-{base} tree (0..{len(self.nodes) - 1})"
                    )

    @property
    def base(self) -> int:
        """Number of leaves."""
        return (len(self.nodes) + 1) // 2

    def level_sizes(self) -> list[int]:
        """Nodes per level, leaves first: ``[8, 4, 2, 1]`` for base 8."""
        sizes = [self.base]
        while sizes[-1] > 1:
            sizes.append(sizes[-1] // 2)
        return sizes

    def levels(self) -> list[tuple[CellNode, ...]]:
        """The nodes level by level, leaves first."""
        out, start = [], 0
        for size in self.level_sizes():
            out.append(self.nodes[start : start + size])
            start += size
        return out

    def locate(self, node: int) -> tuple[int, int]:
        """``(level, position in level)`` of a node index."""
        for level, size in enumerate(self.level_sizes()):
            if node < size:
                return level, node
            node -= size
        raise InvalidArchitectureError(f"node {node} is not in a base-{self.base} tree")

    def to_str(self) -> str:
        """Return the canonical string (see the module docstring)."""
        text = " / ".join(" ".join(n.to_str() for n in level) for level in self.levels())
        if self.memory is not None:
            m = self.memory
            text += f" ; c_in {m.inject_node} {m.inject.to_str()} ; c_out {m.output_node}"
        return text

    @classmethod
    def from_str(cls, text: str) -> RnnCellArchitecture:
        """Parse the canonical string form (extra whitespace is tolerated).

        Raises:
            InvalidArchitectureError: Malformed; the message says which part.
        """
        parts = [" ".join(p.split()) for p in text.split(";")]
        if len(parts) not in (1, 3):
            raise InvalidArchitectureError(
                f"cannot parse cell {text!r}: expected 'TREE' or 'TREE ; c_in NODE comb:act ; c_out NODE'"
            )
        levels = [lv.split() for lv in parts[0].split("/")]
        expected = len(levels[0])
        if expected < 2 or expected & (expected - 1):
            raise InvalidArchitectureError(
                f"cannot parse cell {text!r}: level 0 has {expected} nodes; the number of leaves must be "
                "a power of two >= 2"
            )
        for i, level in enumerate(levels):
            if len(level) != expected:
                raise InvalidArchitectureError(
                    f"cannot parse cell {text!r}: level {i} has {len(level)} nodes, expected {expected}"
                )
            expected //= 2
        if expected != 0:
            raise InvalidArchitectureError(
                f"cannot parse cell {text!r}: the last level must be one root node"
            )
        nodes = tuple(CellNode.from_str(op) for level in levels for op in level)
        memory = None
        if len(parts) == 3:
            inject, output = _INJECT_RE.match(parts[1]), _OUTPUT_RE.match(parts[2])
            if inject is None or output is None:
                raise InvalidArchitectureError(
                    f"cannot parse memory blocks {parts[1]!r} ; {parts[2]!r} of {text!r}; expected "
                    "'c_in NODE comb:act ; c_out NODE', e.g. 'c_in 0 add:relu ; c_out 1'"
                )
            memory = CellMemory(int(inject["node"]), CellNode.from_str(inject["op"]), int(output["node"]))
        return cls(nodes, memory)


NASCELL = RnnCellArchitecture.from_str(
    "add:sigmoid add:relu add:sigmoid mul:relu add:tanh add:sigmoid add:tanh add:sigmoid"
    " / mul:tanh add:tanh mul:tanh add:sigmoid / mul:identity add:tanh / mul:tanh"
    " ; c_in 8 add:tanh ; c_out 12"
)
"""The paper's published PTB cell (section 4.2), as TensorFlow's ``tf.contrib.rnn.NASCell`` computes it."""

TANH_RNN = RnnCellArchitecture.from_str("add:identity add:identity / add:tanh")
"""A plain tanh RNN, ``h_t = tanh(W x_t + U h_{t-1} + b)`` (two leaves whose projections add up)."""

NAMED_CELLS: dict[str, RnnCellArchitecture] = {"nascell": NASCELL, "tanh_rnn": TANH_RNN}
"""Named architectures, usable wherever a cell string is."""


@dataclass(frozen=True)
class RnnCellSearchSpace(SearchSpace[RnnCellArchitecture]):
    """The Zoph & Le recurrent-cell space.

    Args:
        base: Leaves of the tree (paper: 8; 2 and 4 for smaller searches).
        memory: Whether the memory blocks (cell inject, cell output) are searched (paper: yes);
            without them a cell has no ``c`` and the schedule ends after the tree.

    Example (the paper's figure 5):

    >>> space = RnnCellSearchSpace(base=2)
    >>> space.max_steps, space.max_vocab
    (10, 4)
    >>> space.decode([0, 1, 1, 3, 1, 2, 0, 0, 3, 1]).to_str()
    'add:tanh mul:relu / mul:sigmoid ; c_in 0 add:relu ; c_out 1'
    """

    base: int = 8
    memory: bool = True

    name = "rnn-cell"

    def __post_init__(self) -> None:
        """Validate the configuration, naming any bad value."""
        check_choice("base", self.base, BASES)
        if not isinstance(self.memory, bool):
            raise ValueError(f"memory={self.memory!r} must be True or False")

    @property
    def num_nodes(self) -> int:
        """Nodes of the tree (``2 * base - 1``)."""
        return 2 * self.base - 1

    @cached_property
    def _schedule(self) -> tuple[TokenSpec, ...]:
        steps: list[TokenSpec] = []
        for node in range(self.num_nodes):
            steps.append(TokenSpec("combination", COMBINATIONS, layer=node))
            steps.append(TokenSpec("activation", ACTIVATIONS, layer=node))
        if self.memory:
            nodes = tuple(range(self.num_nodes))
            steps += [
                TokenSpec("inject_node", nodes),
                TokenSpec("inject_combination", COMBINATIONS),
                TokenSpec("inject_activation", ACTIVATIONS),
                TokenSpec("cell_output_node", nodes),
            ]
        return tuple(steps)

    def schedule(self) -> tuple[TokenSpec, ...]:
        """Token schedule (see the module docstring)."""
        return self._schedule

    @property
    def max_steps(self) -> int:
        """Steps of an episode (the space has a fixed size)."""
        return len(self._schedule)

    def decode(self, tokens: Sequence[int]) -> RnnCellArchitecture:
        """Turn tokens into a ``RnnCellArchitecture``."""
        self.check_tokens(tokens)
        tok = [int(t) for t in tokens]
        nodes = tuple(
            CellNode(COMBINATIONS[tok[2 * i]], ACTIVATIONS[tok[2 * i + 1]]) for i in range(self.num_nodes)
        )
        memory = None
        if self.memory:
            k = 2 * self.num_nodes
            memory = CellMemory(
                tok[k], CellNode(COMBINATIONS[tok[k + 1]], ACTIVATIONS[tok[k + 2]]), tok[k + 3]
            )
        return RnnCellArchitecture(nodes, memory)

    def encode(self, arch: RnnCellArchitecture) -> list[int]:
        """Tokens of ``arch``; its base and memory must match this space's."""
        if arch.base != self.base or (arch.memory is not None) != self.memory:
            raise InvalidArchitectureError(
                f"{arch.to_str()!r} (base {arch.base}, memory={arch.memory is not None}) is not in this "
                f"space (base={self.base}, memory={self.memory})"
            )
        tokens: list[int] = []
        for node in arch.nodes:
            tokens += [COMBINATIONS.index(node.combination), ACTIVATIONS.index(node.activation)]
        if arch.memory is not None:
            m = arch.memory
            tokens += [
                m.inject_node,
                COMBINATIONS.index(m.inject.combination),
                ACTIVATIONS.index(m.inject.activation),
                m.output_node,
            ]
        return tokens

    def parse(self, text: str) -> RnnCellArchitecture:
        """Parse a canonical cell string or a name of :data:`NAMED_CELLS` (e.g. ``"nascell"``)."""
        if text.strip().lower() in NAMED_CELLS:
            return NAMED_CELLS[text.strip().lower()]
        return RnnCellArchitecture.from_str(text)
