"""The PTB presets: the proxy's recipe, the unigram-bias start it relies on, and its validation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from test_ptb_data import ptb_dir  # noqa: F401 - the real data root fixture

from nas_env.builders.language_model import build_language_model
from nas_env.data.ptb import load_ptb
from nas_env.search_spaces.rnn_cell import NASCELL
from nas_env.training.ptb import PTB_FIDELITIES, PtbFidelity, evaluate_loss, train_language_model


def test_proxy_preset_is_the_measured_recipe() -> None:
    """The values docs/ptb.md measured (a change here must be re-measured with bench_fidelity --space ptb)."""
    proxy = PTB_FIDELITIES["proxy"]
    assert proxy.unigram_bias and (proxy.optimizer, proxy.lr, proxy.lr_schedule) == ("adam", 1e-2, "cosine")
    assert (proxy.hidden_size, proxy.num_layers, proxy.epochs) == (64, 2, 1)
    assert (proxy.train_tokens, proxy.valid_tokens, proxy.batch_size, proxy.bptt) == (600_000, 20_000, 16, 35)
    assert proxy.dropout == 0.0 and proxy.adaptive_softmax == 2000
    assert not PTB_FIDELITIES["paper"].unigram_bias  # Zaremba's recipe, unchanged


def test_unigram_bias_starts_the_model_at_the_unigram_model(ptb_dir: Path) -> None:  # noqa: F811
    """Untrained, a model with the unigram bias scores about the unigram perplexity on the
    validation text (far below the uniform 10,000); without it, about the uniform."""
    corpus = load_ptb(ptb_dir, download_missing=False)
    train, valid = corpus.train[:50_000], corpus.valid[:5_000]
    counts = torch.bincount(train, minlength=corpus.vocab_size).double() + 1
    unigram = float(-(counts / counts.sum()).log()[valid].mean())
    torch.manual_seed(0)
    model = build_language_model(NASCELL, corpus.vocab_size, 16, dropout=0.0, init_scale=0.01)
    uniform_start = evaluate_loss(model, valid, 10, 35)
    model.init_unigram_bias(train)
    unigram_start = evaluate_loss(model, valid, 10, 35)
    assert abs(uniform_start - math.log(corpus.vocab_size)) < 0.05
    assert abs(unigram_start - unigram) < 0.05 and unigram < math.log(corpus.vocab_size) - 2


def test_the_trainer_applies_the_unigram_bias_only_when_asked(ptb_dir: Path) -> None:  # noqa: F811
    corpus = load_ptb(ptb_dir, download_missing=False)
    smoke = PTB_FIDELITIES["smoke"].replace(train_tokens=400, valid_tokens=200, lr=1e-9)
    biases = []
    for fidelity in (smoke, smoke.replace(unigram_bias=True)):
        torch.manual_seed(0)
        model = build_language_model(NASCELL, corpus.vocab_size, 8, dropout=0.0)
        train_language_model(model, corpus, fidelity)
        biases.append(model.decoder.bias.detach())
    assert biases[0].abs().max() < 1e-6  # zeros, moved by at most lr
    counts = torch.bincount(corpus.train[:400], minlength=corpus.vocab_size).double() + 1
    assert torch.allclose(biases[1].double(), (counts / counts.sum()).log(), atol=1e-5)


def test_unigram_bias_enters_the_cache_key_only_when_set() -> None:
    """Added after the first presets: recipes without it keep their cache keys (paper is pinned by
    tests/test_issue_22_golden.py), with it the key differs."""
    base = PtbFidelity()
    assert base.fingerprint == PtbFidelity(unigram_bias=False).fingerprint
    assert base.replace(unigram_bias=True).fingerprint != base.fingerprint


def test_adaptive_softmax_enters_the_cache_key_only_when_set() -> None:
    base = PTB_FIDELITIES["proxy"].replace(adaptive_softmax=None)
    assert base.fingerprint == base.replace(adaptive_softmax=None).fingerprint
    assert base.replace(adaptive_softmax=2000).fingerprint not in (
        base.fingerprint,
        base.replace(adaptive_softmax=1000).fingerprint,
    )


def test_adaptive_softmax_is_an_exact_distribution_started_at_the_unigram_model(
    ptb_dir: Path,  # noqa: F811
) -> None:
    """Every word's probability sums to one, the training loss is the NLL of that distribution,
    and with the unigram bias the untrained model predicts the unigram frequencies."""
    corpus = load_ptb(ptb_dir, download_missing=False)
    torch.manual_seed(0)
    model = build_language_model(NASCELL, corpus.vocab_size, 8, dropout=0.0, adaptive_softmax=500).double()
    x, y = corpus.train[:60].view(20, 3), corpus.train[1:61].view(20, 3)
    log_probs, _ = model(x)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(20, 3, dtype=torch.double))
    nll, _ = model.loss(x, y, reduction="sum")
    assert torch.allclose(nll, -log_probs.gather(-1, y[..., None]).sum())
    assert (y >= 500).any() and (y < 500).any()  # both the head and the tail are scored
    nll.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())
    train = corpus.train[:50_000]
    counts = torch.bincount(train, minlength=corpus.vocab_size).double() + 1
    model.init_unigram_bias(train)
    with torch.no_grad():
        model.decoder.head.weight.zero_(), model.decoder.tail.weight.zero_()
        start, _ = model(x)
    assert torch.allclose(start[0, 0], (counts / counts.sum()).log(), atol=1e-5)


def test_a_recipe_with_the_adaptive_softmax_trains_and_scores(ptb_dir: Path) -> None:  # noqa: F811
    corpus = load_ptb(ptb_dir, download_missing=False)
    smoke = PTB_FIDELITIES["smoke"].replace(train_tokens=2_000, valid_tokens=1_000, unigram_bias=True)
    perplexities = []
    for fidelity in (smoke, smoke.replace(adaptive_softmax=1000)):
        torch.manual_seed(0)
        model = build_language_model(
            NASCELL, corpus.vocab_size, 16, dropout=0.0, adaptive_softmax=fidelity.adaptive_softmax
        )
        perplexities.append(train_language_model(model, corpus, fidelity).val_perplexities[-1])
    counts = torch.bincount(corpus.train[:2_000], minlength=corpus.vocab_size).double() + 1
    unigram = math.exp(float(-(counts / counts.sum()).log()[corpus.valid[:1_000]].mean()))
    assert all(math.isfinite(p) and p < 1.5 * unigram for p in perplexities)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"unigram_bias": "yes"}, "PtbFidelity.unigram_bias='yes' must be True or False"),
        ({"hidden_size": 0}, "PtbFidelity.hidden_size=0 must be a positive integer"),
        ({"train_tokens": 1}, "PtbFidelity.train_tokens=1 must be None (all) or an integer >= 2"),
        ({"optimizer": "adamw"}, "PtbFidelity.optimizer='adamw' is not allowed"),
        (
            {"adaptive_softmax": 0},
            "PtbFidelity.adaptive_softmax=0 must be None (full softmax) or an integer >= 1",
        ),
    ],
)
def test_bad_recipe_values_are_named(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=r"^" + message.replace("(", r"\(").replace(")", r"\)")):
        PTB_FIDELITIES["proxy"].replace(**changes)


def test_an_adaptive_softmax_cutoff_beyond_the_vocabulary_is_named() -> None:
    with pytest.raises(
        ValueError, match=r"adaptive softmax cutoff=50 must be in \[1, 49\] \(vocabulary 50\)"
    ):
        build_language_model(NASCELL, 50, 8, adaptive_softmax=50)


def test_an_adaptive_softmax_is_refused_at_construction_where_it_cannot_apply() -> None:
    """Named when the env is made, not at the first child's training."""
    from nas_env.evaluators.ptb import PtbTrainingEvaluator

    adaptive = PTB_FIDELITIES["smoke"].replace(adaptive_softmax=100)
    with pytest.raises(ValueError, match=r"adaptive_softmax=100 with level='char': .* word level only"):
        PtbTrainingEvaluator(adaptive, level="char", download=False)
    with pytest.raises(ValueError, match=r"adaptive_softmax=10000 with level='word'"):
        PtbTrainingEvaluator(adaptive.replace(adaptive_softmax=10_000), download=False)
    assert PtbTrainingEvaluator(adaptive, download=False).fidelity.adaptive_softmax == 100


def test_the_character_level_keeps_the_full_softmax_of_a_preset() -> None:
    """The proxy's adaptive softmax is for the 10,000-word vocabulary: NAS-PTBChar-v0's default
    ``proxy`` runs with the full softmax over its ~50 characters instead of being refused."""
    from nas_env.evaluators.ptb import PtbTrainingEvaluator

    char = PtbTrainingEvaluator("proxy", level="char", download=False)
    assert char.fidelity == PTB_FIDELITIES["proxy"].replace(adaptive_softmax=None)
    assert PtbTrainingEvaluator("proxy", download=False).fidelity == PTB_FIDELITIES["proxy"]
