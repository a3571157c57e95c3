"""Train and score a Penn Treebank language model with truncated backpropagation through time.

Fidelity presets, like the CNN ones (:mod:`nas_env.training.recipes`):

- ``paper``: the paper's child recipe (section 4.2): 2 layers, 35 epochs over the whole training
  split, sized like the "medium" baseline of Zaremba et al. 2014 (650 units; a base-8 cell then
  has about the medium LSTM's 20M parameters), and Zaremba's medium training: SGD with learning
  rate 1 decayed by 1.2 per epoch after epoch 6, gradient norm clipped at 5, dropout 0.5, weights
  in U(-0.05, 0.05), batch 20, 35 unrolled steps. Meant for a GPU.
- ``proxy`` (default of the envs): a small (64-unit) model trained on a fixed prefix of the
  training split with Adam and a cosine learning-rate decay, its softmax bias started at the
  unigram frequencies, scored on a prefix of the validation split. Chosen by how well it ranks
  cells against a longer training at a cost a CPU search can pay
  (``benchmarks/bench_fidelity.py --space ptb``; ranking and cost in docs/ptb.md).
- ``smoke``: seconds; only checks that everything runs.

Minibatches are contiguous streams (no shuffling); the only randomness is the weights and the
dropout masks, both drawn from the seed, so the same seed gives the same report on one machine.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
from torch import nn

from nas_env.builders.language_model import RnnLanguageModel
from nas_env.data.ptb import PtbCorpus
from nas_env.errors import check_choice
from nas_env.training.recipes import Recipe, recipe_fingerprint

PTB_TRAIN_TOKENS, PTB_VALID_TOKENS = 929_589, 73_760
"""Tokens (``<eos>`` included) of Mikolov's word-level training and validation splits."""
PTB_TRAINER_VERSION = 1
"""Bumped whenever this training code changes results; part of every cache key."""
_ADDED_FIELDS: dict[str, object] = {"unigram_bias": False, "adaptive_softmax": None}
"""Fields added after the first presets, with their defaults: they enter the fingerprint only when
set otherwise, so the cache keys of recipes that do not use them stay what they were."""
Optimizer = Literal["sgd", "adam"]
LrSchedule = Literal["step", "cosine"]


@dataclass(frozen=True)
class PtbFidelity(Recipe):
    """How a language-model child is trained and scored. Frozen; ``fingerprint`` keys the cache."""

    hidden_size: int = 650
    """Units per layer and embedding size (Zaremba's medium model, matching the paper's 4.2 sizing)."""
    num_layers: int = 2
    """Stacked cell layers (paper section 4.2: two)."""
    epochs: int = 35
    """Passes over the training tokens (paper section 4.2: 35)."""
    train_tokens: int | None = None
    """Training tokens used, a prefix of the training split; ``None``: all 929k."""
    valid_tokens: int | None = None
    """Validation tokens scored, a prefix of the validation split; ``None``: all 73k."""
    batch_size: int = 20
    """Parallel streams per minibatch (Zaremba: 20)."""
    bptt: int = 35
    """Unrolled steps of truncated backpropagation through time (Zaremba: 35)."""
    optimizer: Optimizer = "sgd"
    """``sgd`` (Zaremba) or ``adam``."""
    lr: float = 1.0
    """Initial learning rate (Zaremba medium: 1.0)."""
    lr_schedule: LrSchedule = "step"
    """``step``: multiply by ``lr_decay`` every epoch after ``decay_after``; ``cosine``: to 0 per child."""
    lr_decay: float = 1 / 1.2
    """Per-epoch factor of the step schedule (Zaremba medium: 1/1.2)."""
    decay_after: int = 6
    """Epochs at the initial learning rate before the step decay starts (Zaremba medium: 6)."""
    grad_clip: float = 5.0
    """Maximum global gradient norm (Zaremba: 5)."""
    dropout: float = 0.5
    """Dropout on the embedding, between layers and before the softmax (Zaremba medium: 0.5)."""
    init_scale: float = 0.05
    """Weights drawn from U(-init_scale, init_scale) (Zaremba medium: 0.05)."""
    weight_decay: float = 0.0
    """L2 weight decay (Zaremba: none)."""
    eval_batch_size: int = 10
    """Streams when scoring validation and test text (the usual choice: 10)."""
    unigram_bias: bool = False
    """Start the softmax bias at the log unigram frequencies of the training tokens, so a short run
    spends its steps on context instead of first learning word frequencies (a plateau of a few
    hundred steps near the unigram perplexity otherwise)."""
    adaptive_softmax: int | None = None
    """Words in the head of a two-cluster adaptive softmax (the rest scored through a projected
    tail; ``builders.language_model.AdaptiveSoftmax``); ``None``: the full softmax tied to the
    embedding. On a CPU the full 10,000-word softmax is most of a small model's training time."""

    def __post_init__(self) -> None:
        """Validate every field, naming the bad value."""
        self._check_counts(("hidden_size", "num_layers", "epochs", "batch_size", "bptt", "eval_batch_size"))
        self._check_counts(("decay_after",), minimum=0)
        for name in ("train_tokens", "valid_tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
                raise ValueError(f"PtbFidelity.{name}={value!r} must be None (all) or an integer >= 2")
        check_choice("PtbFidelity.optimizer", self.optimizer, ("sgd", "adam"))
        check_choice("PtbFidelity.lr_schedule", self.lr_schedule, ("step", "cosine"))
        if not self.lr > 0 or not 0 < self.lr_decay <= 1 or not self.grad_clip > 0 or self.weight_decay < 0:
            raise ValueError(
                f"PtbFidelity has a bad optimiser setting: lr={self.lr}, lr_decay={self.lr_decay}, "
                f"grad_clip={self.grad_clip}, weight_decay={self.weight_decay}"
            )
        cutoff = self.adaptive_softmax
        if cutoff is not None and (isinstance(cutoff, bool) or not isinstance(cutoff, int) or cutoff < 1):
            raise ValueError(
                f"PtbFidelity.adaptive_softmax={cutoff!r} must be None (full softmax) or an integer >= 1"
            )
        if not isinstance(self.unigram_bias, bool):
            raise ValueError(f"PtbFidelity.unigram_bias={self.unigram_bias!r} must be True or False")
        if not 0 <= self.dropout < 1 or not self.init_scale > 0:
            raise ValueError(
                f"PtbFidelity.dropout={self.dropout} must be in [0, 1), init_scale={self.init_scale} > 0"
            )

    @property
    def fingerprint(self) -> str:
        """Stable short hash of the recipe and trainer version: equal fingerprints, equal training."""
        fields = {k: v for k, v in asdict(self).items() if k not in _ADDED_FIELDS or v != _ADDED_FIELDS[k]}
        return recipe_fingerprint({**fields, "trainer_version": PTB_TRAINER_VERSION})


PTB_FIDELITIES: dict[str, PtbFidelity] = {
    "paper": PtbFidelity(),
    # Chosen with benchmarks/bench_fidelity.py --space ptb (docs/ptb.md): ranks cells by validation
    # perplexity after 600k tokens. The unigram bias and Adam at 1e-2 skip the unigram plateau that
    # held every cell of the first proxy at the unigram model's perplexity; 64 units and the adaptive
    # softmax cut the 10,000-word softmax, most of a small model's CPU time, so three times the
    # earlier 200k tokens fit the same budget.
    "proxy": PtbFidelity(
        hidden_size=64,
        epochs=1,
        train_tokens=600_000,
        valid_tokens=20_000,
        batch_size=16,
        bptt=35,
        optimizer="adam",
        lr=1e-2,
        lr_schedule="cosine",
        dropout=0.0,
        init_scale=0.1,
        eval_batch_size=16,
        unigram_bias=True,
        adaptive_softmax=2000,
    ),
    "smoke": PtbFidelity(
        hidden_size=32,
        epochs=1,
        train_tokens=4_000,
        valid_tokens=2_000,
        batch_size=16,
        bptt=10,
        optimizer="adam",
        lr=1e-2,
        lr_schedule="cosine",
        dropout=0.0,
        init_scale=0.1,
        eval_batch_size=16,
    ),
}
"""Named presets accepted wherever a PTB fidelity is (``fidelity="proxy"``)."""


def get_ptb_fidelity(fidelity: str | PtbFidelity) -> PtbFidelity:
    """Resolve a preset name or pass a ``PtbFidelity`` through.

    Raises:
        ValueError: Unknown preset name; the message lists the presets.
    """
    if isinstance(fidelity, PtbFidelity):
        return fidelity
    check_choice("fidelity", fidelity, PTB_FIDELITIES)
    return PTB_FIDELITIES[fidelity]


@dataclass
class LmTrainReport:
    """What training one language model produced."""

    val_perplexities: list[float] = field(default_factory=list)
    """Validation perplexity after each epoch."""
    train_loss: float = float("nan")
    """Mean training cross-entropy (nats per token) of the last epoch."""
    seconds: float = 0.0
    """Wall-clock seconds of training and scoring."""
    test_perplexity: float | None = None
    """Test perplexity, only when asked for (retraining)."""
    tokens_per_second: float = 0.0
    """Training throughput (tokens of the last epoch over its training time)."""


def batchify(stream: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut a 1-D token stream into ``batch_size`` contiguous streams: ``(steps, batch_size)``."""
    steps = len(stream) // batch_size
    return stream[: steps * batch_size].view(batch_size, steps).t().contiguous()


def _detach(state: list[tuple[torch.Tensor, torch.Tensor]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(h.detach(), c.detach()) for h, c in state]


@torch.inference_mode()
def evaluate_loss(model: RnnLanguageModel, stream: torch.Tensor, batch_size: int, bptt: int) -> float:
    """Mean cross-entropy (nats per token) of ``model`` on a 1-D token stream."""
    model.eval()
    device = next(model.parameters()).device
    data = batchify(stream, batch_size).to(device)
    total, count, state = torch.zeros((), device=device, dtype=torch.float64), 0, None
    for i in range(0, len(data) - 1, bptt):
        x, y = data[i : i + bptt], data[i + 1 : i + 1 + bptt]
        nll, state = model.loss(x[: len(y)], y, state, reduction="sum")
        total += nll
        count += y.numel()
    return float(total) / max(count, 1)


def _perplexity(loss: float, what: str) -> float:
    ppl = math.exp(loss) if loss < 700 else math.inf
    if not math.isfinite(ppl):
        raise FloatingPointError(f"{what} loss is {loss}: the model diverged")
    return ppl


def _learning_rate(fidelity: PtbFidelity, epoch: int, step: int, total_steps: int) -> float:
    if fidelity.lr_schedule == "cosine":
        return 0.5 * fidelity.lr * (1 + math.cos(math.pi * step / total_steps))
    return fidelity.lr * fidelity.lr_decay ** max(epoch + 1 - fidelity.decay_after, 0)


def train_language_model(
    model: RnnLanguageModel,
    corpus: PtbCorpus,
    fidelity: PtbFidelity,
    device: torch.device | str = "cpu",
    with_test: bool = False,
) -> LmTrainReport:
    """Train ``model`` on the first ``fidelity.train_tokens`` training tokens and score it.

    The caller seeds torch (weights and dropout masks) before building the model.

    Args:
        model: A freshly built language model (``RnnLanguageModel``).
        corpus: Penn Treebank.
        fidelity: The recipe.
        device: Where to train.
        with_test: Also score the test split after training (retraining only).

    Raises:
        FloatingPointError: The training loss or a perplexity became NaN or infinite.
    """
    device = torch.device(device)
    start = time.perf_counter()
    model = model.to(device)
    train = batchify(corpus.train[: fidelity.train_tokens], fidelity.batch_size).to(device)
    if fidelity.unigram_bias:
        model.init_unigram_bias(corpus.train[: fidelity.train_tokens])
    valid = corpus.valid[: fidelity.valid_tokens]
    params = [p for p in model.parameters() if p.requires_grad]
    opt: torch.optim.Optimizer
    if fidelity.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=fidelity.lr, weight_decay=fidelity.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=fidelity.lr, weight_decay=fidelity.weight_decay)
    steps_per_epoch = math.ceil((len(train) - 1) / fidelity.bptt)
    total_steps = steps_per_epoch * fidelity.epochs
    report, step = LmTrainReport(), 0
    for epoch in range(fidelity.epochs):
        model.train()
        epoch_start, state = time.perf_counter(), None
        loss_sum = 0.0
        for i in range(0, len(train) - 1, fidelity.bptt):
            for group in opt.param_groups:
                group["lr"] = _learning_rate(fidelity, epoch, step, total_steps)
            y = train[i + 1 : i + 1 + fidelity.bptt]
            loss, state = model.loss(train[i : i + len(y)], y, state)
            state = _detach(state)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, fidelity.grad_clip)
            opt.step()
            value = float(loss.detach())  # a NaN stops the child at once instead of wasting its budget
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"training loss is {value} at epoch {epoch}, step {step}: the model diverged"
                )
            loss_sum += value
            step += 1
        report.tokens_per_second = (
            (len(train) - 1) * fidelity.batch_size / (time.perf_counter() - epoch_start)
        )
        report.train_loss = loss_sum / steps_per_epoch
        val_loss = evaluate_loss(model, valid, fidelity.eval_batch_size, fidelity.bptt)
        report.val_perplexities.append(_perplexity(val_loss, f"validation (epoch {epoch})"))
    if with_test:
        test_loss = evaluate_loss(model, corpus.test, fidelity.eval_batch_size, fidelity.bptt)
        report.test_perplexity = _perplexity(test_loss, "test")
    report.seconds = time.perf_counter() - start
    return report


def measure_seconds_per_lm(
    model: RnnLanguageModel,
    fidelity: PtbFidelity,
    device: torch.device | str = "cpu",
    steps: int = 3,
    time_box: float | None = None,
) -> float:
    """Estimate the seconds :func:`train_language_model` takes for ``model`` by timing a few steps.

    Trains ``model`` (a throwaway) for one warm-up step and then up to ``steps`` timed steps of
    truncated backpropagation on random word-level tokens of the recipe's shape (``bptt`` x
    ``batch_size``), and scales to the recipe's steps over the word-level split, plus its scoring
    passes (a forward pass counted as a third of a training step).

    Args:
        model: A freshly built language model over the word-level vocabulary.
        fidelity: The recipe to estimate.
        device: Where to time.
        steps: Timed steps at most.
        time_box: With a value, stop after the first timed step that ends this many seconds after
            the warm-up.

    Returns:
        The estimated seconds of training and scoring one such child.
    """
    device = torch.device(device)
    model = model.to(device)
    f = fidelity
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    # log-uniform token ids: about Zipf's law, so an adaptive softmax's tail is timed at its share
    x = (model.vocab_size ** torch.rand(f.bptt + 1, f.batch_size, device=device)).long() - 1
    model.train()
    start, timed = time.perf_counter(), 0
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()
        loss, _ = model.loss(x[:-1], x[1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), f.grad_clip)
        opt.step()
        timed = i
        if i >= 1 and time_box is not None and time.perf_counter() - start >= time_box:
            break
    per_step = (time.perf_counter() - start) / timed
    train_steps = math.ceil(
        (min(f.train_tokens or PTB_TRAIN_TOKENS, PTB_TRAIN_TOKENS) // f.batch_size - 1) / f.bptt
    )
    scored_tokens = min(f.valid_tokens or PTB_VALID_TOKENS, PTB_VALID_TOKENS)
    score_steps = scored_tokens / (f.bptt * f.batch_size) / 3  # a forward pass: a third of a step
    return per_step * f.epochs * (train_steps + score_steps)
