"""Score recurrent cells by really training a language model with them on Penn Treebank."""

from __future__ import annotations

import hashlib
import math
import os
import traceback

import torch

from nas_env.builders.language_model import build_language_model, count_parameters
from nas_env.data.ptb import LEVELS, WORD_VOCAB_SIZE, PtbCorpus, find_ptb, load_ptb
from nas_env.errors import check_choice
from nas_env.evaluators.base import Evaluator, resolve_device
from nas_env.records import EvalResult, Metric
from nas_env.search_spaces.rnn_cell import RnnCellArchitecture
from nas_env.training.ptb import PtbFidelity, get_ptb_fidelity, train_language_model

DATA_VERSION = 1
"""Bumped whenever tokenisation or the vocabulary rule changes; part of every cache key."""


class PtbTrainingEvaluator(Evaluator):
    """Trains each cell in a 2-layer language model on Penn Treebank and reports its perplexity.

    A child whose loss becomes NaN or infinite (exploding activations are common in this space:
    products of identity nodes grow without bound) is a ``status="failed"`` result with the error.

    Args:
        fidelity: A preset name (``"paper"``, ``"proxy"``, ``"smoke"``) or a ``PtbFidelity``. At
            the character level a preset's adaptive softmax is dropped (full softmax over ~50 characters).
        data_dir: Root holding ``ptb/``; defaults to ``$NAS_ENV_DATA``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        download: Download the word-level files (md5-checked) when they are not found.
        level: ``"word"`` (perplexity) or ``"char"`` (also bits per character).
    """

    def __init__(
        self,
        fidelity: str | PtbFidelity = "proxy",
        data_dir: str | os.PathLike[str] | None = None,
        device: str | torch.device = "auto",
        download: bool = True,
        level: str = "word",
    ) -> None:
        """Resolve the fidelity; the data is loaded on the first evaluation."""
        check_choice("level", level, LEVELS)
        self.fidelity = get_ptb_fidelity(fidelity)
        if isinstance(fidelity, str) and level != "word":
            # A preset's adaptive softmax serves the 10,000-word vocabulary; characters (about 50)
            # keep the full softmax. A PtbFidelity asking for one at this level is refused below.
            self.fidelity = self.fidelity.replace(adaptive_softmax=None)
        cutoff = self.fidelity.adaptive_softmax
        if cutoff is not None and (level != "word" or cutoff >= WORD_VOCAB_SIZE):
            raise ValueError(
                f"PtbFidelity.adaptive_softmax={cutoff} with level={level!r}: an adaptive softmax "
                f"applies to the word level only, with fewer head words than its {WORD_VOCAB_SIZE:,}"
            )
        self.data_dir = data_dir
        self.device = resolve_device(device)
        self.download = download
        self.level = level
        names = [Metric.VAL_PERPLEXITY.value, Metric.TRAIN_LOSS.value]
        if level == "char":
            names.append(Metric.VAL_BPC.value)
        self.metric_names = tuple(names)

    @property
    def fingerprint(self) -> str:
        """Data level and version, recipe and trainer version (not the device)."""
        payload = f"ptb-{self.level}-data{DATA_VERSION}-{self.fidelity.fingerprint}"
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def check_data(self) -> None:
        """Find the corpus files, downloading them when allowed, without loading (``DatasetError``)."""
        find_ptb(self.data_dir, self.level, download_missing=self.download)

    def load_data(self) -> PtbCorpus:
        """Load (and if needed download) the corpus now, so that a missing dataset fails early."""
        return load_ptb(self.data_dir, self.level, download_missing=self.download)

    def evaluate(self, arch: RnnCellArchitecture, seed: int, with_test: bool = False) -> EvalResult:
        """Build and train a language model around ``arch`` with ``seed``.

        Args:
            arch: The cell.
            seed: Seeds the weights and the dropout masks.
            with_test: Also report test perplexity (retraining only; never for rewards).

        Returns:
            The result; training failures (NaN, overflow, out of memory) are ``status="failed"``.
        """
        corpus = self.load_data()
        f = self.fidelity
        torch.manual_seed(seed)  # weights and dropout masks
        model = build_language_model(
            arch, corpus.vocab_size, f.hidden_size, f.num_layers, f.dropout, f.init_scale, f.adaptive_softmax
        )
        num_params = count_parameters(model)
        try:
            report = train_language_model(model, corpus, f, self.device, with_test=with_test)
        except (FloatingPointError, RuntimeError) as exc:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            error = "".join(traceback.format_exception_only(exc)).strip()
            return EvalResult("failed", num_params=num_params, error=error, seed=seed)
        ppl = report.val_perplexities[-1]
        metrics = {Metric.VAL_PERPLEXITY.value: ppl, Metric.TRAIN_LOSS.value: report.train_loss}
        if report.test_perplexity is not None:
            metrics[Metric.TEST_PERPLEXITY.value] = report.test_perplexity
        if self.level == "char":
            metrics[Metric.VAL_BPC.value] = math.log2(ppl)
            if report.test_perplexity is not None:
                metrics[Metric.TEST_BPC.value] = math.log2(report.test_perplexity)
        return EvalResult("ok", metrics, num_params, report.seconds, seed=seed)
