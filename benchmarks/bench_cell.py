"""Recurrent-cell training throughput and seconds per PTB child, side by side in one run.

Prints:
- training tokens/s of the 2-layer tied language model around the compiled NASCell, around the
  same cell with autograd recording its ops instead of the hand-written backward (``fused=False``:
  same level plan and batched projections, so already far from a per-node cell), and around
  ``torch.nn.LSTM`` of equal hidden size (oneDNN's fused kernel on CPU), at the proxy preset's size
  and at the paper's (650 units, batch 20); ratios to the LSTM (target: NASCell >= 0.5). At the
  proxy's size also the NASCell and the LSTM with an adaptive softmax (``--adaptive-softmax`` head
  words) instead of the full one, and their speed-up over it.
  The models are measured in interleaved rounds and the median is kept, so that a busy machine
  slows all of them alike;
- seconds per child (and validation perplexity) at each of ``--presets`` (default ``smoke`` and
  ``proxy``; a preset may carry ``:FIELD=VALUE`` overrides of its recipe, as in bench_fidelity)
  for the NASCell, the tanh RNN, random base-8 cells and, for reference, the LSTM.

Run: ``NAS_ENV_DATA=../shared/data python benchmarks/bench_cell.py`` (``--threads 2`` for the
2-core figures; ``--quick`` for a short run).

Note: with equal hidden size the base-8 cell does twice the LSTM's matmul work (8 projections of
``x`` and of ``h`` against the LSTM's 4), so the LSTM's speed is not reachable; the softmax over
10,000 words is shared by both.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from _fidelity_runs import parse_preset
from torch import nn

from nas_env.builders.language_model import RnnLanguageModel, build_language_model
from nas_env.data.ptb import load_ptb
from nas_env.evaluators.ptb import PtbTrainingEvaluator
from nas_env.search_spaces.rnn_cell import NASCELL, TANH_RNN, RnnCellSearchSpace
from nas_env.training.ptb import PTB_FIDELITIES, PtbFidelity, batchify, train_language_model

BPTT = 35


def make_model(kind: str, vocab: int, hidden: int, adaptive: int) -> RnnLanguageModel:
    """``nascell`` (compiled), ``autograd`` (same cell, autograd backward) or ``lstm``; a ``+adaptive``
    suffix: with an adaptive softmax of ``adaptive`` head words."""
    torch.manual_seed(0)
    cell, _, softmax = kind.partition("+")
    model = build_language_model(
        "lstm" if cell == "lstm" else NASCELL,
        vocab,
        hidden,
        dropout=0.5,
        adaptive_softmax=adaptive if softmax else None,
    )
    if cell == "autograd":
        for layer in model.layers:
            layer.fused = False  # type: ignore[assignment]
    return model


class Trainer:
    """Runs training steps of one model on real PTB batches and counts tokens."""

    def __init__(
        self, kind: str, train: torch.Tensor, vocab: int, hidden: int, batch: int, adaptive: int
    ) -> None:
        self.model = make_model(kind, vocab, hidden, adaptive)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=1.0)
        self.data = batchify(train, batch)
        self.state: list | None = None
        self.pos = 0

    def step(self) -> int:
        if self.pos + BPTT + 1 > len(self.data):
            self.pos, self.state = 0, None
        x = self.data[self.pos : self.pos + BPTT]
        y = self.data[self.pos + 1 : self.pos + 1 + BPTT]
        loss, state = self.model.loss(x, y, self.state)
        self.state = [(h.detach(), c.detach()) for h, c in state]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.opt.step()
        self.pos += BPTT
        return x.numel()

    def tokens_per_second(self, seconds: float) -> float:
        tokens, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            tokens += self.step()
        return tokens / (time.perf_counter() - start)


def throughput(
    hidden: int, batch: int, seconds: float, rounds: int, kinds: list[str], adaptive: int
) -> dict[str, float]:
    """Median training tokens/s per model kind, measured in interleaved rounds."""
    corpus = load_ptb()
    trainers = {
        k: Trainer(k, corpus.train[:200_000], corpus.vocab_size, hidden, batch, adaptive) for k in kinds
    }
    for t in trainers.values():  # warm-up: allocator, oneDNN primitives
        t.step()
        t.step()
    results: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(rounds):
        for k, t in trainers.items():
            results[k].append(t.tokens_per_second(seconds))
    return {k: statistics.median(v) for k, v in results.items()}


def lstm_child(fidelity: PtbFidelity, seed: int) -> tuple[float, float]:
    """Seconds and validation perplexity of the LSTM language model trained like a child."""
    corpus = load_ptb()
    torch.manual_seed(seed)
    f = fidelity
    model = build_language_model(
        "lstm", corpus.vocab_size, f.hidden_size, f.num_layers, f.dropout, f.init_scale, f.adaptive_softmax
    )
    report = train_language_model(model, corpus, f)
    return report.seconds, report.val_perplexities[-1]


def seconds_per_child(preset: str, fidelity: PtbFidelity, children: int) -> None:
    """Train the named cells, random base-8 cells and the LSTM at ``fidelity`` (labelled ``preset``);
    print seconds and perplexity."""
    evaluator = PtbTrainingEvaluator(fidelity, device="cpu")
    evaluator.load_data()
    space = RnnCellSearchSpace()
    rng = np.random.default_rng(0)
    cells = [("nascell", NASCELL), ("tanh_rnn", TANH_RNN)]
    cells += [(f"random{i}", space.decode(space.sample(rng))) for i in range(children)]
    evaluator.evaluate(TANH_RNN, 0)  # warm-up, not reported
    seconds = []
    for name, arch in cells:
        result = evaluator.evaluate(arch, 0)
        seconds.append(result.cost_s)
        ppl = result.metrics.get("val_perplexity", float("nan"))
        print(
            f"  {preset:6s} {name:9s} {result.cost_s:6.1f} s  val ppl {ppl:8.1f}  {result.status}",
            result.error[:60],
        )
    lstm_s, lstm_ppl = lstm_child(evaluator.fidelity, 0)
    print(
        f"  {preset:6s} {'lstm':9s} {lstm_s:6.1f} s  val ppl {lstm_ppl:8.1f}  (reference, not in the space)"
    )
    print(f"  {preset:6s} cells: mean {np.mean(seconds):.1f} s, max {np.max(seconds):.1f} s per child")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per throughput measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per model")
    parser.add_argument("--children", type=int, default=3, help="random cells timed per preset")
    parser.add_argument("--quick", action="store_true", help="proxy size only, 1 round, smoke children")
    parser.add_argument("--adaptive-softmax", type=int, default=2000, help="head words of the adaptive rows")
    parser.add_argument(
        "--presets",
        default=None,
        help="presets of the seconds-per-child table (default: smoke,proxy; --quick: smoke)",
    )
    args = parser.parse_args()
    fidelities: dict[str, PtbFidelity] = {}
    try:
        for preset in (args.presets or ("smoke" if args.quick else "smoke,proxy")).split(","):
            name, overrides = parse_preset(preset, "ptb")
            fidelities[preset] = PTB_FIDELITIES[name].replace(**overrides)
    except ValueError as exc:
        parser.error(str(exc))
    if args.threads:
        torch.set_num_threads(args.threads)
    proxy = PTB_FIDELITIES["proxy"]
    sizes = [(proxy.hidden_size, proxy.batch_size)] + ([] if args.quick else [(650, 20)])
    rounds = 1 if args.quick else args.rounds
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; train tokens/s (median of {rounds})"
    )
    for hidden, batch in sizes:
        adaptive = ["nascell+adaptive", "lstm+adaptive"] if hidden == proxy.hidden_size else []
        kinds = ["nascell", "autograd", "lstm", *adaptive]
        tps = throughput(hidden, batch, args.seconds, rounds, kinds, args.adaptive_softmax)
        lstm = tps["lstm"]
        print(
            f"  hidden {hidden:4d} batch {batch:3d}:  NASCell compiled {tps['nascell']:8.0f}  "
            f"autograd-backward {tps['autograd']:8.0f}  nn.LSTM {lstm:8.0f}  |  "
            f"compiled/LSTM {tps['nascell'] / lstm:.2f}  "
            f"autograd/LSTM {tps['autograd'] / lstm:.2f}"
        )
        if adaptive:
            print(
                f"  hidden {hidden:4d} batch {batch:3d}, adaptive softmax ({args.adaptive_softmax} words):  "
                f"NASCell {tps['nascell+adaptive']:8.0f} ({tps['nascell+adaptive'] / tps['nascell']:.2f}x)  "
                f"nn.LSTM {tps['lstm+adaptive']:8.0f} ({tps['lstm+adaptive'] / lstm:.2f}x)"
            )
    print("seconds per child (train + validation)")
    for preset, fidelity in fidelities.items():
        seconds_per_child(preset, fidelity, args.children)


if __name__ == "__main__":
    main()
