"""The Penn Treebank section of ``bench_fidelity.py --space ptb``: named and random cells, each
preset's perplexities against a longer reference training."""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np
from _fidelity_runs import Trainer, arch_name, parse_preset, row

from nas_env.evaluators.ptb import PtbTrainingEvaluator
from nas_env.ranking import kendall_tau
from nas_env.search_spaces.rnn_cell import NASCELL, TANH_RNN, RnnCellSearchSpace
from nas_env.training.ptb import PTB_FIDELITIES, PtbFidelity

PTB_REFERENCE = PtbFidelity(
    hidden_size=64,
    epochs=2,
    train_tokens=None,
    valid_tokens=None,
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
)
"""The PTB reference: the proxy's 64-unit model trained for two passes over the whole 929k-token
training text (1.86M tokens, three times the proxy's 600k; Adam with a cosine decay over both
passes) and scored on the whole 73k-token validation split, not the proxy's 20k-token prefix. It
keeps the proxy's adaptive softmax, which is an exact distribution over every word, so the two
differ only in how long they train and how much text they score. Spelled out, not derived from
``proxy``, so reworking the proxy leaves the reference (and its cache key) alone."""
PTB_REFERENCE_LABEL = "2 epochs of all 929k tokens, 64 units, all 73k validation tokens"


def geometric_mean(runs: list[list[float]]) -> np.ndarray:
    """Per cell, the geometric mean of several runs' perplexities (inf if any run diverged)."""
    return np.exp(np.mean(np.log(runs), axis=0))


def ptb_sample(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """The named references, then ``--rnn-cells`` random base-8 cells (``--seed``): (label, arch)."""
    space = RnnCellSearchSpace(base=8)
    rng = np.random.default_rng(args.seed)
    randoms = [(f"random {i}", space.decode(space.sample(rng))) for i in range(args.rnn_cells)]
    return [("LSTM", "lstm"), ("NASCell", NASCELL), ("tanh RNN", TANH_RNN), *randoms]


def ptb_section(trainer: Trainer, presets: list[str], args: argparse.Namespace) -> list[str]:
    """Seed-to-seed tau and tau against the long reference of validation perplexities on PTB."""
    sample = ptb_sample(args)
    archs = [arch for _, arch in sample]
    failed = math.inf  # a diverged child ranks below every trained one

    def evaluator(fidelity: PtbFidelity) -> PtbTrainingEvaluator:
        return PtbTrainingEvaluator(fidelity, data_dir=args.data_dir, device=args.device, download=False)

    def perplexities(fidelity: PtbFidelity, seed: int, label: str) -> tuple[list, list]:
        return trainer.scores(evaluator(fidelity), archs, seed, label, "val_perplexity", failed)

    lines = [
        f"PTB space: LSTM, NASCell, tanh RNN and {args.rnn_cells} random base-8 cells (RnnCellSearchSpace "
        f"sample, seed {args.seed}); validation perplexity (inf: diverged)"
    ]
    runs_by_preset = {}
    for preset in presets:
        name, overrides = parse_preset(preset, "ptb")
        fidelity = PTB_FIDELITIES[name].replace(**overrides)
        runs_by_preset[preset] = [perplexities(fidelity, s, preset) for s in range(args.train_seeds)]
    columns = {f"{p} s{s}": run[0] for p, runs in runs_by_preset.items() for s, run in enumerate(runs)}
    reference = None
    if args.reference:
        ref_runs = [perplexities(PTB_REFERENCE, s, "reference") for s in range(args.reference_seeds)]
        reference = geometric_mean([ppl for ppl, _ in ref_runs])
        ref_tau = kendall_tau(ref_runs[0][0], ref_runs[1][0]) if len(ref_runs) > 1 else math.nan
        seeds = f"geometric mean of {len(ref_runs)} seeds" if len(ref_runs) > 1 else "seed 0"
        lines.append(
            row("reference", {"tau s0-s1": ref_tau}, [s for _, secs in ref_runs for s in secs])
            + f"  ({PTB_REFERENCE_LABEL}; {seeds})"
            + trainer.wall_per_child("reference")
        )
        columns["reference"] = list(reference)
    for preset, runs in runs_by_preset.items():
        taus = {"tau s0-s1": kendall_tau(runs[0][0], runs[1][0]) if len(runs) > 1 else math.nan}
        if reference is not None:
            for s, (ppl, _) in enumerate(runs):
                taus[f"seed {s} vs reference"] = kendall_tau(ppl, reference)
            if len(runs) > 1:
                mean = geometric_mean([ppl for ppl, _ in runs])
                taus["mean vs reference"] = kendall_tau(mean, reference)
        lines.append(row(preset, taus, [s for run in runs for s in run[1]]) + trainer.wall_per_child(preset))
        if reference is not None and len(ref_runs) > 1:
            # Proxy seed s and reference seed s start from the same weights and read the same first
            # tokens, which flatters their tau; the reference runs of the other seeds share neither.
            unshared = []
            for s, (ppl, _) in enumerate(runs):
                others = [ref for r, (ref, _) in enumerate(ref_runs) if r != s]
                unshared.append(f"seed {s} {kendall_tau(ppl, geometric_mean(others)):6.3f}")
            lines.append("    tau vs the other seeds' reference (no shared start): " + "  ".join(unshared))
        per_seed = [ppl for ppl, _ in runs]
        if len(runs) > 1:  # the geometric mean of the seeds' perplexities (inf if one diverged)
            per_seed.append(list(geometric_mean(per_seed)))
        for s, ppl in enumerate(per_seed):
            random_median = float(np.median(ppl[3:]))
            named = dict(zip(("LSTM", "NASCell", "tanh RNN"), ppl[:3], strict=False))
            beats = [n for n in ("LSTM", "NASCell") if named[n] < min(named["tanh RNN"], random_median)]
            lines.append(
                ("    seed {s}: " if s < len(runs) else "    mean:   ").format(s=s)
                + "  ".join(f"{n} {v:.1f}" for n, v in named.items())
                + f"  median random {random_median:.1f};  better than the tanh RNN and the median random "
                f"cell: {', '.join(beats) or 'neither'}"
            )
    widths = [max(12, len(c) + 2) for c in columns]
    header = f"  {'cell':10s}" + "".join(f"{c:>{w}s}" for c, w in zip(columns, widths, strict=True))
    lines += ["  validation perplexity per cell:", header + "  architecture"]
    for i, (label, arch) in enumerate(sample):
        values = "".join(f"{col[i]:{w}.1f}" for col, w in zip(columns.values(), widths, strict=True))
        lines.append(f"  {label:10s}{values}  {arch_name(arch)}")
    return lines
