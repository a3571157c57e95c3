"""Compile a :class:`~nas_env.search_spaces.rnn_cell.RnnCellArchitecture` into a torch module.

Why it is fast. A naive cell runs ``2 * base - 1`` small modules per time step and lets autograd
record every one of them; its weight gradients are then summed step by step from skinny
``(8H x B) @ (B x H)`` products. Here:

- all leaf projections of ``x`` for the whole sequence are one matmul before the time loop, and
  all leaf projections of ``h_{t-1}`` are one ``addmm`` per time step (``base * H`` wide);
- the nodes of one tree level are evaluated together on a ``(batch, nodes, H)`` tensor, with
  ``torch.where`` masks where the level mixes operations, so a step costs a few ops per level
  whatever the base;
- the whole sequence is one ``torch.autograd.Function`` whose backward is written out (BPTT through
  the tree by hand), so the forward records nothing for autograd, and the gradient of the
  recurrent weights is a single ``(base*H x T*B) @ (T*B x H)`` matmul after the time loop.

``CompiledCell(..., fused=False)`` runs the same level plan through autograd step by step (the
reference the fused backward is tested against, and the "naive" figure of the benchmark).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from nas_env.search_spaces.rnn_cell import RnnCellArchitecture

CellState = tuple[torch.Tensor, torch.Tensor]
"""``(h, c)``, each ``(batch, hidden)``; ``c`` is carried unchanged by cells without memory."""


def _tanh(x: torch.Tensor) -> torch.Tensor:
    """``tanh`` as ``2 sigmoid(2x) - 1``: equal up to rounding, and faster on large tensors.

    On AVX-512 CPU builds ``torch.tanh`` is several times slower than ``torch.sigmoid``
    (``docs/ptb.md`` has the figure); small tensors, where the extra ops' overhead dominates, use it.
    """
    if x.numel() < 4096:
        return torch.tanh(x)
    return torch.sigmoid(2 * x) * 2 - 1


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda x: x,
    "tanh": _tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
}


def _activation_grad(name: str, g: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``g * act'(pre)`` from the activation's output, with ATen's one-pass backward kernels."""
    if name == "tanh":
        return torch.ops.aten.tanh_backward(g, out)
    if name == "sigmoid":
        return torch.ops.aten.sigmoid_backward(g, out)
    if name == "relu":
        return torch.ops.aten.threshold_backward(g, out, 0)
    return g


def _combination(name: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a + b if name == "add" else a * b


@dataclass
class _Level:
    """What one tree level computes, with its index tensors on the right device.

    The most common combination and activation of the level are applied to all its nodes at
    once; the nodes that differ are gathered, recomputed and scattered back (``index_copy``), so
    each operation runs only on the nodes that need it and the result is exact.
    """

    size: int
    combination: str  # the level's most common combination
    other_combination: torch.Tensor | None  # positions using the other one
    activation: str  # the level's most common activation
    other_activations: list[tuple[str, torch.Tensor]]  # (activation, positions)
    inject: tuple[int, str, str] | None  # (position, combination, activation) of c_{t-1}
    output: int | None  # position whose pre-activation value is c_t


def _majority(names: list[str], device: torch.device) -> tuple[str, list[tuple[str, torch.Tensor]]]:
    order = sorted(set(names), key=lambda n: (-names.count(n), n))
    others = [(n, torch.tensor([i for i, a in enumerate(names) if a == n], device=device)) for n in order[1:]]
    return order[0], others


def _plan(arch: RnnCellArchitecture, device: torch.device) -> list[_Level]:
    """Turn the architecture into per-level operations (leaves first)."""
    levels = []
    inject = output = None
    if arch.memory is not None:
        inject = arch.locate(arch.memory.inject_node)
        output = arch.locate(arch.memory.output_node)
    for index, nodes in enumerate(arch.levels()):
        combination, other_combs = _majority([n.combination for n in nodes], device)
        activation, other_acts = _majority([n.activation for n in nodes], device)
        levels.append(
            _Level(
                size=len(nodes),
                combination=combination,
                other_combination=other_combs[0][1] if other_combs else None,
                activation=activation,
                other_activations=other_acts,
                inject=(inject[1], arch.memory.inject.combination, arch.memory.inject.activation)
                if inject is not None and inject[0] == index and arch.memory is not None
                else None,
                output=output[1] if output is not None and output[0] == index else None,
            )
        )
    return levels


def _combine(level: _Level, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    pre = _combination(level.combination, a, b)
    idx = level.other_combination
    if idx is not None:
        other = "mul" if level.combination == "add" else "add"
        pre = pre.index_copy(1, idx, _combination(other, a.index_select(1, idx), b.index_select(1, idx)))
    return pre


def _activate(level: _Level, pre: torch.Tensor) -> torch.Tensor:
    out = _ACTIVATIONS[level.activation](pre)
    for name, idx in level.other_activations:
        out = out.index_copy(1, idx, _ACTIVATIONS[name](pre.index_select(1, idx)))
    return out


def _activate_backward(level: _Level, g: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    g_pre = _activation_grad(level.activation, g, out)
    for name, idx in level.other_activations:
        g_idx = _activation_grad(name, g.index_select(1, idx), out.index_select(1, idx))
        g_pre = g_pre.index_copy(1, idx, g_idx)
    return g_pre


def _combine_backward(
    level: _Level, g: torch.Tensor, left: torch.Tensor, right: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    if level.combination == "add":
        g_left = g_right = g
    else:
        g_left, g_right = g * right, g * left
    idx = level.other_combination
    if idx is not None:
        g_idx = g.index_select(1, idx)
        if level.combination == "add":  # the others multiply
            g_left = g_left.index_copy(1, idx, g_idx * right.index_select(1, idx))
            g_right = g_right.index_copy(1, idx, g_idx * left.index_select(1, idx))
        else:  # the others add
            g_left, g_right = g_left.index_copy(1, idx, g_idx), g_right.index_copy(1, idx, g_idx)
    return g_left, g_right


# (left, right, out, output of the injection or None) per level
_Saved = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any]]


def _step(
    levels: list[_Level], xp: torch.Tensor, m: torch.Tensor, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, _Saved]:
    """One time step from the leaf projections ``xp`` and ``m`` (``(B, base, H)``); autograd-safe."""
    saved: _Saved = []
    left, right, c_new = xp, m, c
    post = xp
    for level in levels:
        pre = _combine(level, left, right)
        out = post = _activate(level, pre)
        injected = None
        if level.inject is not None:
            pos, comb, act = level.inject
            u = out[:, pos]
            v = u + c if comb == "add" else u * c
            w = _ACTIVATIONS[act](v)
            post = out.clone()
            post[:, pos] = w
            injected = w
        if level.output is not None:
            c_new = pre[:, level.output]
        saved.append((left, right, out, injected))
        left, right = post[:, 0::2], post[:, 1::2]
    return post[:, 0], c_new, saved


def _step_backward(
    levels: list[_Level], saved: _Saved, g_h: torch.Tensor, g_c: torch.Tensor, c_prev: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Gradients of one step w.r.t. ``xp``, ``m`` and ``c_{t-1}`` given those of ``h_t`` and ``c_t``."""
    g_post = g_h.unsqueeze(1)
    g_c_prev = None
    g_left = g_right = g_post
    for level, (left, right, out, injected) in zip(reversed(levels), reversed(saved), strict=True):
        g_out = g_post
        if level.inject is not None:
            pos, comb, act = level.inject
            g_v = _activation_grad(act, g_post[:, pos], injected)
            if comb == "add":
                g_u, g_c_prev = g_v, g_v
            else:
                g_u, g_c_prev = g_v * c_prev, g_v * out[:, pos]
            g_out = g_post.clone()
            g_out[:, pos] = g_u
        g_pre = _activate_backward(level, g_out, out)
        if level.output is not None:
            g_pre = g_pre.clone()  # may alias g_out (identity), a view of the caller's gradient
            g_pre[:, level.output] += g_c
        g_left, g_right = _combine_backward(level, g_pre, left, right)
        g_post = torch.stack((g_left, g_right), dim=2).flatten(1, 2)
    return g_left, g_right, g_c_prev


class _CellSequence(torch.autograd.Function):
    """The cell over a whole sequence, with a hand-written backward (BPTT through the tree)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        xp: torch.Tensor,
        h0: torch.Tensor,
        c0: torch.Tensor,
        weight_h: torch.Tensor,
        bias: torch.Tensor,
        levels: list[_Level],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        steps, batch, width = xp.shape
        hidden = h0.shape[1]
        base = width // hidden
        hs = xp.new_empty(steps, batch, hidden)
        h, c = h0, c0
        saved = []
        for t in range(steps):
            m = torch.addmm(bias, h, weight_h.t()).view(batch, base, hidden)
            h, c_new, step_saved = _step(levels, xp[t].view(batch, base, hidden), m, c)
            hs[t] = h
            saved.append((step_saved, c))
            c = c_new
        ctx.levels, ctx.saved = levels, saved
        ctx.save_for_backward(h0, weight_h, hs)
        return hs, c.clone() if c is c0 else c

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g_hs: torch.Tensor, g_c: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        h0, weight_h, hs = ctx.saved_tensors
        steps, batch, hidden = hs.shape
        width = weight_h.shape[0]
        g_xp = g_hs.new_empty(steps, batch, width)
        g_m = g_hs.new_empty(steps, batch, width)
        g_h = torch.zeros_like(h0)
        for t in reversed(range(steps)):
            step_saved, c_prev = ctx.saved[t]
            gx, gm, g_c_prev = _step_backward(ctx.levels, step_saved, g_hs[t] + g_h, g_c, c_prev)
            g_xp[t] = gx.reshape(batch, width)
            g_m[t] = gm.reshape(batch, width)
            g_h = g_m[t] @ weight_h
            if g_c_prev is not None:  # with memory; without it c passes through unchanged
                g_c = g_c_prev
        h_prev = torch.cat((h0.unsqueeze(0), hs[:-1]))
        g_weight = g_m.view(-1, width).t() @ h_prev.view(-1, hidden)
        return g_xp, g_h, g_c, g_weight, g_m.sum((0, 1)), None


class CompiledCell(nn.Module):
    """A recurrent cell of the search space as one layer over a sequence.

    Args:
        arch: The cell.
        input_size: Features of ``x_t``.
        hidden_size: Features of ``h_t`` and ``c_t``.
        fused: Use the hand-written backward (default); ``False`` records every op with autograd.
    """

    def __init__(
        self, arch: RnnCellArchitecture, input_size: int, hidden_size: int, fused: bool = True
    ) -> None:
        """Create the projection weights of all leaves (uniform in +-1/sqrt(hidden), like nn.LSTM)."""
        super().__init__()
        self.arch = arch
        self.hidden_size = hidden_size
        self.fused = fused
        width = arch.base * hidden_size
        self.weight_x = nn.Parameter(torch.empty(width, input_size))
        """Leaf ``i``'s input projection is rows ``i*H:(i+1)*H`` (TensorFlow's ``weights`` transposed)."""
        self.weight_h = nn.Parameter(torch.empty(width, hidden_size))
        """Leaf ``i``'s recurrent projection is rows ``i*H:(i+1)*H``."""
        self.bias = nn.Parameter(torch.empty(width))
        """Added to the recurrent projections (TensorFlow ``NASCell(use_biases=True)``)."""
        bound = 1 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)
        self._levels: dict[torch.device, list[_Level]] = {}

    def levels(self, device: torch.device) -> list[_Level]:
        """The level plan with its masks on ``device`` (built once per device)."""
        if device not in self._levels:
            self._levels[device] = _plan(self.arch, device)
        return self._levels[device]

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the cached plans (they hold device tensors)."""
        return {**self.__dict__, "_levels": {}}

    def forward(self, x: torch.Tensor, state: CellState | None = None) -> tuple[torch.Tensor, CellState]:
        """Run the cell over ``x`` of shape ``(T, B, input_size)``.

        Returns:
            ``h_t`` for every step, ``(T, B, hidden_size)``, and the final ``(h, c)``.
        """
        if state is None:
            zeros = x.new_zeros(x.shape[1], self.hidden_size)
            state = (zeros, zeros)
        h, c = state
        xp = F.linear(x, self.weight_x)
        levels = self.levels(x.device)
        if self.fused:
            hs, c = _CellSequence.apply(xp, h, c, self.weight_h, self.bias, levels)
            return hs, (hs[-1], c)
        outputs = []
        batch, base = x.shape[1], self.arch.base
        for t in range(x.shape[0]):
            m = torch.addmm(self.bias, h, self.weight_h.t()).view(batch, base, self.hidden_size)
            h, c, _ = _step(levels, xp[t].view(batch, base, self.hidden_size), m, c)
            outputs.append(h)
        return torch.stack(outputs), (h, c)
