"""Retrain one architecture string at a chosen fidelity and report validation and test scores.

Example::

    nas-retrain --arch "3x3:36 | 5x5:48 <0 | 3x3:64 <0,1" --fidelity paper --seed 0
    nas-retrain --space ptb --arch nascell --fidelity proxy --epochs 2 --train-tokens all --valid-tokens all

A recipe flag overrides that field of the preset (``--train-tokens all``: the whole split); a flag of
the other space's recipe is refused.

The test set is used here, and only here: search rewards never see it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from typing import Any

from nas_env.errors import NASEnvError
from nas_env.evaluators.cifar import CifarTrainingEvaluator
from nas_env.evaluators.ptb import PtbTrainingEvaluator
from nas_env.search_spaces.cnn import CnnArchitecture
from nas_env.search_spaces.rnn_cell import NAMED_CELLS, RnnCellArchitecture
from nas_env.training.ptb import PtbFidelity, get_ptb_fidelity
from nas_env.training.recipes import FIDELITIES, Fidelity, get_fidelity


def _check_overrides(recipe: type, overrides: dict[str, Any], space: str) -> None:
    """Refuse a flag that is not a field of ``recipe``, naming it and the fields there are."""
    known = {f.name for f in fields(recipe)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(
            f"--{unknown[0].replace('_', '-')} does not apply to {space}; "
            f"{recipe.__name__} has {sorted(known)}"
        )


def retrain_cnn(args: argparse.Namespace, fidelity_overrides: dict[str, Any]) -> dict[str, Any]:
    """Train a CNN string on CIFAR-10 and return its metrics (validation and test accuracy)."""
    arch = CnnArchitecture.from_str(args.arch)
    _check_overrides(Fidelity, fidelity_overrides, "the CNN space")
    fidelity = get_fidelity(args.fidelity).replace(**fidelity_overrides)
    evaluator = CifarTrainingEvaluator(fidelity, data_dir=args.data_dir, device=args.device)
    result = evaluator.evaluate(arch, args.seed, with_test=True)
    return {
        "arch": arch.to_str(),
        "space": "cnn",
        "fidelity": args.fidelity,
        "recipe": asdict(fidelity),
        "seed": args.seed,
        "status": result.status,
        "error": result.error,
        "num_params": result.num_params,
        "train_seconds": round(result.cost_s, 2),
        **result.metrics,
    }


def retrain_ptb(
    args: argparse.Namespace, fidelity_overrides: dict[str, Any], level: str = "word"
) -> dict[str, Any]:
    """Train a recurrent cell (string, ``nascell`` or ``tanh_rnn``) on PTB: validation and test perplexity."""
    arch = NAMED_CELLS.get(args.arch.strip().lower()) or RnnCellArchitecture.from_str(args.arch)
    _check_overrides(PtbFidelity, fidelity_overrides, "PTB")
    fidelity = get_ptb_fidelity(args.fidelity).replace(**fidelity_overrides)
    evaluator = PtbTrainingEvaluator(fidelity, data_dir=args.data_dir, device=args.device, level=level)
    result = evaluator.evaluate(arch, args.seed, with_test=True)
    return {
        "arch": arch.to_str(),
        "space": "ptb" if level == "word" else "ptb-char",
        "fidelity": args.fidelity,
        "recipe": asdict(fidelity),
        "seed": args.seed,
        "status": result.status,
        "error": result.error,
        "num_params": result.num_params,
        "train_seconds": round(result.cost_s, 2),
        **result.metrics,
    }


RETRAINERS: dict[str, Callable[[argparse.Namespace, dict[str, Any]], dict[str, Any]]] = {
    "cnn": retrain_cnn,
    "ptb": retrain_ptb,
    "ptb-char": lambda args, overrides: retrain_ptb(args, overrides, level="char"),
}
"""Retraining function per search space (``--space``)."""


RECIPES: tuple[type, ...] = (Fidelity, PtbFidelity)
"""The recipes whose fields are ``--field`` flags; each space refuses the other's."""
NONE = object()
"""What ``_count_or_all`` returns for all/none: the field's None, once the overrides are read
(argparse's None means the flag was not given)."""


def _count_or_all(text: str) -> int | object:
    """A count, or ``all``/``none`` (the field's None: the whole split, or no adaptive softmax)."""
    if text.lower() in ("all", "none"):
        return NONE
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number, 'all' or 'none'") from None


def _fidelity_override_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--field`` per field of the CNN and the PTB recipes (a shared name once)."""
    seen: set[str] = set()
    for recipe in RECIPES:
        for f in fields(recipe):
            if f.name in seen:
                continue
            seen.add(f.name)
            kind = type(getattr(recipe(), f.name))
            parse: Callable[[str], Any] = (
                (lambda s: s.lower() in ("1", "true", "yes"))
                if kind is bool
                else _count_or_all
                if kind is type(None)
                else kind
            )
            parser.add_argument(
                f"--{f.name.replace('_', '-')}",
                type=parse,
                default=None,
                help=f"override the preset's {f.name} ({recipe.__name__})",
            )


def recipe_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe flags given on the command line, ``all``/``none`` as None."""
    names = {f.name for recipe in RECIPES for f in fields(recipe)}
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    return {name: None if value is NONE else value for name, value in given.items()}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", required=True, help="canonical architecture string (quote it)")
    parser.add_argument("--space", default="cnn", choices=sorted(RETRAINERS), help="search space of --arch")
    parser.add_argument("--fidelity", default="paper", help=f"preset: {', '.join(FIDELITIES)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="dataset root (default: $NAS_ENV_DATA)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default=None, help="also write the result to this JSON file")
    _fidelity_override_flags(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nas-retrain``; prints the metrics as JSON."""
    args = parse_args(argv)
    overrides = recipe_overrides(args)
    try:
        result = RETRAINERS[args.space](args, overrides)
    except (NASEnvError, ValueError) as exc:
        print(f"nas-retrain: error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
