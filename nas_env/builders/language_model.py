"""The child network of a recurrent cell: a word-level language model around compiled cells.

:func:`build_language_model` stacks :class:`~nas_env.builders.rnn_cell.CompiledCell` layers (or
``torch.nn.LSTM`` layers, the baseline) between a tied embedding and softmax: the child network
of the Penn Treebank search (Zoph & Le 2017, section 4.2). On a CPU the 10,000-word softmax is
most of a small model's training time; :class:`AdaptiveSoftmax` is the cheaper, exact alternative.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from nas_env.builders.rnn_cell import CellState, CompiledCell
from nas_env.search_spaces.rnn_cell import RnnCellArchitecture


class LstmLayer(nn.Module):
    """``torch.nn.LSTM`` (one layer, fused kernel) with the ``CompiledCell`` calling convention."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        """Wrap a one-layer ``nn.LSTM``."""
        super().__init__()
        self.hidden_size = hidden_size
        self.lstm = nn.LSTM(input_size, hidden_size)

    def forward(self, x: torch.Tensor, state: CellState | None = None) -> tuple[torch.Tensor, CellState]:
        """Run over ``x`` ``(T, B, input_size)``; state tensors are ``(B, hidden)``."""
        lstm_state = None if state is None else (state[0].unsqueeze(0), state[1].unsqueeze(0))
        out, (h, c) = self.lstm(x, lstm_state)
        return out, (h[0], c[0])


class AdaptiveSoftmax(nn.Module):
    """A two-cluster adaptive softmax (Grave et al., ICML 2017) over a frequency-sorted vocabulary.

    The ``cutoff`` most frequent words and one tail token are scored by a full-width head; a word
    of the tail is scored as the tail token's probability times its own under a softmax over the
    tail, computed from a ``tail_dim``-wide projection and only for the tokens whose target is in
    the tail. A proper distribution over the whole vocabulary, so perplexities stay exact, at a
    fraction of a full softmax's cost when most tokens are frequent words (as in any corpus).
    Not ``torch.nn.AdaptiveLogSoftmaxWithLoss``: its tail has no bias, so it cannot start at the
    unigram model as the short PTB recipes need (``PtbFidelity.unigram_bias``).

    Args:
        hidden: Width of the features scored.
        vocab_size: Tokens of the vocabulary, ids sorted by decreasing frequency.
        cutoff: Words in the head (``1 <= cutoff < vocab_size``).
        tail_dim: Width of the tail's projection.
    """

    def __init__(self, hidden: int, vocab_size: int, cutoff: int, tail_dim: int) -> None:
        """Create the head and the projected tail."""
        super().__init__()
        if not 1 <= cutoff < vocab_size:
            raise ValueError(
                f"adaptive softmax cutoff={cutoff} must be in [1, {vocab_size - 1}] (vocabulary {vocab_size})"
            )
        self.cutoff, self.vocab_size = cutoff, vocab_size
        self.head = nn.Linear(hidden, cutoff + 1)
        self.tail_proj = nn.Linear(hidden, tail_dim, bias=False)
        self.tail = nn.Linear(tail_dim, vocab_size - cutoff)

    def nll(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of each ``target`` ``(N,)`` given features ``x`` ``(N, hidden)``."""
        in_tail = target >= self.cutoff
        head_lp = F.log_softmax(self.head(x), dim=-1)
        nll = -head_lp.gather(1, torch.where(in_tail, self.cutoff, target)[:, None]).squeeze(1)
        rows = in_tail.nonzero().squeeze(1)
        if len(rows):
            tail_lp = F.log_softmax(self.tail(self.tail_proj(x[rows])), dim=-1)
            nll = nll.index_add(0, rows, -tail_lp.gather(1, (target[rows] - self.cutoff)[:, None]).squeeze(1))
        return nll

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of every word ``(..., vocab_size)``: valid logits for a softmax."""
        head_lp = F.log_softmax(self.head(x), dim=-1)
        tail_lp = F.log_softmax(self.tail(self.tail_proj(x)), dim=-1) + head_lp[..., self.cutoff :]
        return torch.cat([head_lp[..., : self.cutoff], tail_lp], dim=-1)

    @torch.no_grad()
    def init_bias(self, log_unigram: torch.Tensor) -> None:
        """Start at the unigram distribution ``log_unigram`` (log frequencies of the vocabulary).

        The head's biases are the head words' and the whole tail's log frequencies, the tail's
        biases the tail words' log frequencies within the tail.
        """
        tail_mass = torch.logsumexp(log_unigram[self.cutoff :], dim=0)
        self.head.bias.copy_(torch.cat([log_unigram[: self.cutoff], tail_mass[None]]))
        self.tail.bias.copy_(log_unigram[self.cutoff :] - tail_mass)


class RnnLanguageModel(nn.Module):
    """Word-level language model: embedding, stacked recurrent layers, dropout, tied softmax.

    Dropout (Zaremba et al. 2014) is applied to the embedding output, between layers and before
    the decoder. The decoder shares the embedding matrix (Inan et al. 2017; Press & Wolf 2017), so
    the embedding size is the hidden size; with ``adaptive_softmax`` it is an untied
    :class:`AdaptiveSoftmax` instead.

    Args:
        vocab_size: Tokens of the vocabulary.
        layers: The recurrent layers (``CompiledCell`` or ``LstmLayer``), each hidden -> hidden.
        dropout: Dropout probability (paper recipe: 0.5).
        init_scale: Every weight is drawn from U(-init_scale, init_scale) (Zaremba: 0.05).
        adaptive_softmax: Head words of an adaptive softmax (tail projected to a quarter of the
            hidden width); ``None``: the full softmax tied to the embedding.
    """

    def __init__(
        self,
        vocab_size: int,
        layers: list[nn.Module],
        dropout: float = 0.5,
        init_scale: float = 0.05,
        adaptive_softmax: int | None = None,
    ) -> None:
        """Create the embedding and decoder around ``layers``."""
        super().__init__()
        hidden = int(layers[0].hidden_size)  # type: ignore[arg-type]
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, hidden)
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)
        self.decoder: nn.Linear | AdaptiveSoftmax
        if adaptive_softmax is None:
            self.decoder = nn.Linear(hidden, vocab_size)
            self.decoder.weight = self.embedding.weight
        else:
            self.decoder = AdaptiveSoftmax(hidden, vocab_size, adaptive_softmax, max(hidden // 4, 1))
        for name, p in self.named_parameters():
            if name.startswith("decoder.") and name.endswith("bias"):
                nn.init.zeros_(p)
            else:
                nn.init.uniform_(p, -init_scale, init_scale)

    def features(
        self, tokens: torch.Tensor, state: list[CellState] | None = None
    ) -> tuple[torch.Tensor, list[CellState]]:
        """The last layer's output ``(T, B, hidden)`` (after dropout) and the new per-layer states."""
        x = self.dropout(self.embedding(tokens))
        new_state = []
        for i, layer in enumerate(self.layers):
            x, s = layer(x, None if state is None else state[i])
            x = self.dropout(x)
            new_state.append(s)
        return x, new_state

    def forward(
        self, tokens: torch.Tensor, state: list[CellState] | None = None
    ) -> tuple[torch.Tensor, list[CellState]]:
        """Logits ``(T, B, vocab)`` for ``tokens`` ``(T, B)`` and the new per-layer states."""
        x, new_state = self.features(tokens, state)
        return self.decoder(x), new_state

    def loss(
        self,
        tokens: torch.Tensor,
        targets: torch.Tensor,
        state: list[CellState] | None = None,
        reduction: Literal["mean", "sum"] = "mean",
    ) -> tuple[torch.Tensor, list[CellState]]:
        """Cross-entropy (nats) of ``targets`` ``(T, B)`` after ``tokens``, and the new states.

        ``reduction`` is ``"mean"`` or ``"sum"`` over the tokens. The adaptive softmax scores its
        tail only where a target is in it, which is where its saving comes from.
        """
        x, new_state = self.features(tokens, state)
        x, targets = x.reshape(-1, x.shape[-1]), targets.reshape(-1)
        if isinstance(self.decoder, AdaptiveSoftmax):
            nll = self.decoder.nll(x, targets)
            return (nll.sum() if reduction == "sum" else nll.mean()), new_state
        return F.cross_entropy(self.decoder(x), targets, reduction=reduction), new_state

    @torch.no_grad()
    def init_unigram_bias(self, tokens: torch.Tensor) -> None:
        """Set the softmax bias to the log unigram frequencies of ``tokens`` (add-one smoothed).

        The untrained model then predicts the unigram distribution, so training starts from there
        instead of spending its first few hundred steps learning word frequencies.
        """
        counts = torch.bincount(tokens.flatten().cpu(), minlength=self.vocab_size).double() + 1
        log_unigram = (counts / counts.sum()).log()
        if isinstance(self.decoder, AdaptiveSoftmax):
            self.decoder.init_bias(log_unigram.float())
        else:
            self.decoder.bias.copy_(log_unigram)


def build_language_model(
    arch: RnnCellArchitecture | str,
    vocab_size: int,
    hidden_size: int,
    num_layers: int = 2,
    dropout: float = 0.5,
    init_scale: float = 0.05,
    adaptive_softmax: int | None = None,
) -> RnnLanguageModel:
    """The child network of a cell: ``num_layers`` compiled cells in a tied language model.

    Args:
        arch: The cell, or ``"lstm"`` for the same model around ``torch.nn.LSTM`` (the baseline).
        vocab_size: Tokens of the vocabulary.
        hidden_size: Units of every layer (and the embedding size).
        num_layers: Stacked recurrent layers (paper: 2).
        dropout: Dropout probability.
        init_scale: Uniform initialisation range.
        adaptive_softmax: Head words of an adaptive softmax; ``None``: the tied full softmax.

    Raises:
        ValueError: ``arch`` is a string other than ``"lstm"``, or the cutoff is out of range.
    """
    if isinstance(arch, str):
        if arch != "lstm":
            raise ValueError(f"arch={arch!r}: expected an RnnCellArchitecture or 'lstm'")
        layers: list[nn.Module] = [LstmLayer(hidden_size, hidden_size) for _ in range(num_layers)]
    else:
        layers = [CompiledCell(arch, hidden_size, hidden_size) for _ in range(num_layers)]
    return RnnLanguageModel(vocab_size, layers, dropout, init_scale, adaptive_softmax)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (the tied embedding counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
