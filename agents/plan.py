"""How the controller walks a token schedule, precomputed once per schedule (plumbing of the controller).

:func:`make_plan` turns an env's token schedule into index tensors: the LSTM steps (one per token,
plus one anchor point after each layer's last token when the schedule has skip connections), the
token fed in at each step, and which steps each softmax head and the anchor attention score. The
controller in :mod:`agents.reinforce` then samples a batch and recomputes log-probabilities with
tensor indexing instead of per-token Python logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from nas_env.records import TokenSpec

ANCHOR = "anchor"
"""Token kind of skip-connection decisions (``TokenSpec.anchor_of`` names the earlier layer)."""
START, AFTER_ANCHOR = 0, 1
"""Embedding ids of the controller's first input and of its input after an anchor point."""


def token_vocab(schedule: tuple[TokenSpec, ...]) -> dict[str, int]:
    """Head size of every non-anchor token kind: its most choices at any step of ``schedule``."""
    vocab: dict[str, int] = {}
    for spec in schedule:
        if spec.kind != ANCHOR:
            vocab[spec.kind] = max(vocab.get(spec.kind, 0), spec.num_choices)
    return vocab


@dataclass(frozen=True, eq=False)
class Plan:
    """How the controller walks one token schedule: its LSTM steps and where each token comes from.

    Step ``t`` is a token step (``kind`` names its head, ``pos`` its schedule position) or the
    anchor point of a layer (``kind == ANCHOR``). Precomputed once per schedule.
    """

    steps: tuple[tuple[str, int, int], ...]
    """Per LSTM step: (kind, schedule position, number of choices) or (ANCHOR, index of the layer, 2)."""
    prev_pos: torch.Tensor
    """Per step: schedule position of the token fed in as input, or -1 (start / after an anchor point)."""
    prev_id: torch.Tensor
    """Per step: embedding offset of that token's kind, or the fixed id of the start/after-anchor input."""
    heads: tuple[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor | None], ...]
    """Per kind: (kind, its LSTM steps, their schedule positions, mask of each step's valid choices
    or None when every step has all of the head's choices), for the teacher-forced pass."""
    anchor_steps: torch.Tensor
    """LSTM step of each layer's anchor point."""
    anchor_pos: torch.Tensor
    """Schedule positions of the anchor tokens."""
    anchor_i: torch.Tensor
    """Per anchor token: index (into ``anchor_steps``) of the layer being fed."""
    anchor_j: torch.Tensor
    """Per anchor token: index of the earlier layer that may feed it."""
    anchor_groups: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    """Per anchor point: (schedule positions of its anchor tokens, the earlier layers they name)."""
    length: int
    """Number of tokens in the schedule."""


@lru_cache(maxsize=64)
def make_plan(
    schedule: tuple[TokenSpec, ...], offsets: tuple[tuple[str, int], ...], sizes: tuple[tuple[str, int], ...]
) -> Plan:
    """The :class:`Plan` of ``schedule`` for a controller with these embedding offsets and head sizes.

    Args:
        schedule: The env's token schedule.
        offsets: (kind, embedding offset of its first choice) pairs, as a hashable tuple.
        sizes: (kind, number of choices of its head) pairs.

    Raises:
        ValueError: A token that does not fit the controller's heads, or an anchor token that
            names no earlier layer.
    """
    offset, size = dict(offsets), dict(sizes)

    def tensor(values: list[int]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.long)

    has_anchor = any(s.kind == ANCHOR for s in schedule)
    last_pos = {s.layer: p for p, s in enumerate(schedule) if s.kind != ANCHOR}
    steps: list[tuple[str, int, int]] = []
    prev_pos, prev_id = [-1], [START]
    anchor_layer: dict[int, int] = {}  # layer -> index into anchor_steps
    anchor_steps: list[int] = []
    for pos, spec in enumerate(schedule):
        if spec.kind == ANCHOR:
            continue
        if spec.kind not in offset or spec.num_choices > size[spec.kind]:
            raise ValueError(
                f"token {spec.kind!r} with {spec.num_choices} choices at step {pos} does not fit the "
                f"controller's heads {size}; build it from the largest schedule"
            )
        steps.append((spec.kind, pos, spec.num_choices))
        prev_pos.append(pos)
        prev_id.append(offset[spec.kind])
        if has_anchor and pos == last_pos[spec.layer]:
            anchor_layer[spec.layer] = len(anchor_steps)
            anchor_steps.append(len(steps))
            steps.append((ANCHOR, len(anchor_steps) - 1, 2))
            prev_pos.append(-1)
            prev_id.append(AFTER_ANCHOR)
    anchor_pos, anchor_i, anchor_j = [], [], []
    for pos, spec in enumerate(schedule):
        if spec.kind == ANCHOR:
            i, j = anchor_layer.get(spec.layer), anchor_layer.get(spec.anchor_of)  # type: ignore[arg-type]
            if i is None or j is None or j >= i:
                raise ValueError(
                    f"anchor token at step {pos} (layer {spec.layer} <- {spec.anchor_of}) "
                    "must refer to an earlier layer that has tokens of its own"
                )
            anchor_pos.append(pos)
            anchor_i.append(i)
            anchor_j.append(j)
    heads = []
    for kind in sorted({k for k, _, _ in steps if k != ANCHOR}):
        idx = [(t, p, n) for t, (k, p, n) in enumerate(steps) if k == kind]
        valid = torch.arange(size[kind])[None] < torch.tensor([n for _, _, n in idx])[:, None]
        heads.append(
            (
                kind,
                tensor([t for t, _, _ in idx]),
                tensor([p for _, p, _ in idx]),
                None if bool(valid.all()) else valid,
            )
        )

    groups = tuple(
        (
            tensor([p for p, i in zip(anchor_pos, anchor_i, strict=True) if i == layer]),
            tensor([j for j, i in zip(anchor_j, anchor_i, strict=True) if i == layer]),
        )
        for layer in range(len(anchor_steps))
    )

    return Plan(
        steps=tuple(steps),
        prev_pos=tensor(prev_pos[: len(steps)]),
        prev_id=tensor(prev_id[: len(steps)]),
        heads=tuple(heads),
        anchor_steps=tensor(anchor_steps),
        anchor_pos=tensor(anchor_pos),
        anchor_i=tensor(anchor_i),
        anchor_j=tensor(anchor_j),
        anchor_groups=groups,
        length=len(schedule),
    )
