"""The child network of a recurrent cell: a word-level language model around compiled cells.

:func:`build_language_model` stacks :class:`~nas_env.builders.rnn_cell.CompiledCell` layers (or
``torch.nn.LSTM`` layers, the baseline) between a tied embedding and softmax: the child network
of the Penn Treebank search (Zoph & Le 2017, section 4.2).
"""

from __future__ import annotations

import torch
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


class RnnLanguageModel(nn.Module):
    """Word-level language model: embedding, stacked recurrent layers, dropout, tied softmax.

    Dropout (Zaremba et al. 2014) is applied to the embedding output, between layers and before
    the decoder. The decoder shares the embedding matrix (Inan et al. 2017; Press & Wolf 2017), so
    the embedding size is the hidden size.

    Args:
        vocab_size: Tokens of the vocabulary.
        layers: The recurrent layers (``CompiledCell`` or ``LstmLayer``), each hidden -> hidden.
        dropout: Dropout probability (paper recipe: 0.5).
        init_scale: Every weight is drawn from U(-init_scale, init_scale) (Zaremba: 0.05).
    """

    def __init__(
        self, vocab_size: int, layers: list[nn.Module], dropout: float = 0.5, init_scale: float = 0.05
    ) -> None:
        """Create the embedding and decoder around ``layers``."""
        super().__init__()
        hidden = int(layers[0].hidden_size)  # type: ignore[arg-type]
        self.embedding = nn.Embedding(vocab_size, hidden)
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden, vocab_size)
        self.decoder.weight = self.embedding.weight
        for name, p in self.named_parameters():
            if name == "decoder.bias":
                nn.init.zeros_(p)
            else:
                nn.init.uniform_(p, -init_scale, init_scale)

    def forward(
        self, tokens: torch.Tensor, state: list[CellState] | None = None
    ) -> tuple[torch.Tensor, list[CellState]]:
        """Logits ``(T, B, vocab)`` for ``tokens`` ``(T, B)`` and the new per-layer states."""
        x = self.dropout(self.embedding(tokens))
        new_state = []
        for i, layer in enumerate(self.layers):
            x, s = layer(x, None if state is None else state[i])
            x = self.dropout(x)
            new_state.append(s)
        return self.decoder(x), new_state

    @torch.no_grad()
    def init_unigram_bias(self, tokens: torch.Tensor) -> None:
        """Set the softmax bias to the log unigram frequencies of ``tokens`` (add-one smoothed).

        The untrained model then predicts the unigram distribution, so training starts from there
        instead of spending its first few hundred steps learning word frequencies.
        """
        counts = torch.bincount(tokens.flatten().cpu(), minlength=self.decoder.out_features).double() + 1
        self.decoder.bias.copy_((counts / counts.sum()).log())


def build_language_model(
    arch: RnnCellArchitecture | str,
    vocab_size: int,
    hidden_size: int,
    num_layers: int = 2,
    dropout: float = 0.5,
    init_scale: float = 0.05,
) -> RnnLanguageModel:
    """The child network of a cell: ``num_layers`` compiled cells in a tied language model.

    Args:
        arch: The cell, or ``"lstm"`` for the same model around ``torch.nn.LSTM`` (the baseline).
        vocab_size: Tokens of the vocabulary.
        hidden_size: Units of every layer (and the embedding size).
        num_layers: Stacked recurrent layers (paper: 2).
        dropout: Dropout probability.
        init_scale: Uniform initialisation range.

    Raises:
        ValueError: ``arch`` is a string other than ``"lstm"``.
    """
    if isinstance(arch, str):
        if arch != "lstm":
            raise ValueError(f"arch={arch!r}: expected an RnnCellArchitecture or 'lstm'")
        layers: list[nn.Module] = [LstmLayer(hidden_size, hidden_size) for _ in range(num_layers)]
    else:
        layers = [CompiledCell(arch, hidden_size, hidden_size) for _ in range(num_layers)]
    return RnnLanguageModel(vocab_size, layers, dropout, init_scale)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (the tied embedding counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
