"""Fidelity presets: how much training a child gets before it is scored.

``paper`` is the paper's recipe (section 4.1): 50 epochs on the full 45k split, SGD with Nesterov
momentum 0.9, learning rate 0.1, weight decay 1e-4, random crop and horizontal flip, per-channel
normalisation; the reward uses the maximum validation accuracy over the last 5 epochs. ``proxy``
trains 10,000 images for 5 epochs at 16x16 (in bf16 where a timing shows it faster) and scores all
5,000 validation images: cheap enough for a search on a CPU, chosen for how well it ranks children
against longer training. ``smoke`` only checks that everything runs. How each preset ranks and
what it costs is measured by ``benchmarks/bench_fidelity.py`` and reported in ``docs/fidelity.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal, Self

import torch

from nas_env.errors import check_choice

Precision = Literal["fp32", "bf16", "auto"]
LrSchedule = Literal["constant", "cosine"]
TRAINER_VERSION = 2
"""Bumped whenever the training code changes results; part of every cache key.

2: input resolution and ``precision="auto"``; validation scored only in the epochs the reward uses.
"""
RESOLUTIONS: tuple[int, ...] = (32, 16, 8)
"""Input resolutions a recipe may train at (CIFAR-10's 32x32, average-pooled by 2 or 4)."""


def bf16_is_fast(device: torch.device | str = "cpu") -> bool:
    """Whether bf16 autocast speeds training up on ``device``.

    On CPUs it does where AMX tiles or AVX512-BF16 are present and slows it down elsewhere
    (``benchmarks/bench_trainer.py`` measures it). On CUDA it is left off: the small children of
    this package trained slower in bf16 than in fp32 on a GPU (``docs/fidelity.md``).
    """
    if torch.device(device).type != "cpu":
        return False
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        check = getattr(torch.cpu, probe, None)  # private probes; absent on old torch builds
        if check is not None and check():
            return True
    return False


def recipe_fingerprint(payload: dict[str, Any]) -> str:
    """Short stable hash of a recipe's fields and trainer version: equal fingerprints, equal training."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


class Recipe:
    """What every training recipe (a frozen dataclass) shares: count checks and ``replace``."""

    def _check_counts(self, names: Iterable[str], minimum: int = 1) -> None:
        """Raise ``ValueError`` naming the first field that is not an integer >= ``minimum``."""
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{type(self).__name__}.{name}={value!r} must be a positive integer")

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class Fidelity(Recipe):
    """How a child is trained and scored. Frozen; ``fingerprint`` keys the results cache."""

    epochs: int = 50
    """Training epochs (paper: 50)."""
    train_images: int = 45_000
    """Training images used, a fixed prefix of the seeded 45k split (paper: all 45,000)."""
    valid_images: int = 5_000
    """Validation images scored (paper: all 5,000)."""
    batch_size: int = 128
    """Minibatch size (not given in the paper; 128 is the common choice)."""
    lr: float = 0.1
    """SGD learning rate (paper: 0.1)."""
    momentum: float = 0.9
    """Nesterov momentum (paper: 0.9)."""
    weight_decay: float = 1e-4
    """L2 weight decay (paper: 1e-4)."""
    lr_schedule: LrSchedule = "constant"
    """``constant`` (the paper states no schedule) or ``cosine`` annealing to 0 per child."""
    augment: bool = True
    """Random crop (pad 4) and horizontal flip (paper: yes)."""
    reward_epochs: int = 5
    """The accuracy is the maximum validation accuracy over this many last epochs (paper: 5; all
    epochs when there are fewer)."""
    precision: Precision = "fp32"
    """``fp32``, ``bf16`` autocast, or ``auto``: whichever of the two trains faster here.

    An evaluator resolves ``auto`` when it is made, by timing a reference child in fp32 and in
    bf16 on this machine and keeping the faster (cached per machine;
    :func:`~nas_env.training.calibration.resolve_precision`): on some CPUs with bf16 instructions
    bf16 is the slower, so the CPU's flags cannot decide. Where the device has no fast bf16
    (:func:`bf16_is_fast` is false, or CUDA) it is fp32 without timing. The cache key therefore
    names the precision that really trained the child."""
    resolution: int = 32
    """Input side in pixels: 32 (CIFAR-10's own), or 16 / 8 (images average-pooled once, crop
    padding scaled alike). Lower resolutions are a proxy lever: 4x fewer pixels, ~4x cheaper
    convolutions, and the ranking they give is measured in ``benchmarks/bench_fidelity.py``."""

    def __post_init__(self) -> None:
        """Validate every field, naming the bad value."""
        self._check_counts(("epochs", "train_images", "valid_images", "batch_size", "reward_epochs"))
        if self.train_images > 45_000 or self.valid_images > 5_000:
            raise ValueError(
                f"Fidelity.train_images={self.train_images} / valid_images={self.valid_images} exceed "
                "the 45,000/5,000 split"
            )
        if not self.lr > 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise ValueError(f"Fidelity has a bad optimiser setting: lr={self.lr}, momentum={self.momentum}")
        check_choice("Fidelity.lr_schedule", self.lr_schedule, ("constant", "cosine"))
        check_choice("Fidelity.precision", self.precision, ("fp32", "bf16", "auto"))
        check_choice("Fidelity.resolution", self.resolution, RESOLUTIONS)

    @property
    def fingerprint(self) -> str:
        """Stable short hash of the recipe and trainer version: equal fingerprints, equal training."""
        return recipe_fingerprint({**asdict(self), "trainer_version": TRAINER_VERSION})

    def resolved(self, device: torch.device | str) -> Fidelity:
        """This recipe with ``precision="auto"`` made concrete for ``device`` from the CPU's flags alone.

        bf16 where :func:`bf16_is_fast`, else fp32, without timing anything. It is the fallback of
        the training functions when they are called directly with ``auto``; evaluators resolve
        ``auto`` by a measured timing first
        (:func:`~nas_env.training.calibration.resolve_precision`), so their recipes reach the
        trainer already concrete.
        """
        if self.precision != "auto":
            return self
        return self.replace(precision="bf16" if bf16_is_fast(device) else "fp32")


SHORT_TRAINING = Fidelity(
    epochs=5,
    train_images=10_000,
    valid_images=5_000,
    batch_size=128,
    lr=0.1,
    lr_schedule="cosine",
    reward_epochs=1,
    precision="auto",
)
"""What the short recipes share: 10k training images, a cosine schedule over them, the last epoch's
accuracy on all 5,000 validation images, ``precision="auto"``. The presets and the bench's long
reference differ from it only in ``epochs`` and ``resolution``, each stated where it is defined,
so reworking one preset leaves the others' measured recipes (and cache keys) alone."""

FIDELITIES: dict[str, Fidelity] = {
    "paper": Fidelity(),
    "proxy": SHORT_TRAINING.replace(epochs=5, resolution=16),
    "smoke": Fidelity(epochs=1, train_images=128, valid_images=128, batch_size=64, lr=0.05, reward_epochs=1),
}
"""Named presets accepted wherever a fidelity is (``fidelity="proxy"``); their ranking quality and
cost per child are measured in ``docs/fidelity.md``."""

_NB201_SHORT = SHORT_TRAINING.replace(epochs=6, resolution=32)
NB201_FIDELITIES: dict[str, Fidelity] = {
    "paper": FIDELITIES["paper"],
    "proxy": _NB201_SHORT,
    "deep": _NB201_SHORT,
    "smoke": FIDELITIES["smoke"],
}
"""The presets of NAS-Bench-201's trained mode. ``proxy`` and ``deep`` share one recipe and differ in
the reduced network they train (:data:`nas_env.evaluators.nb201_training.NB201_NETWORKS`): ``deep``'s
three cells per stage show what a skip connection is worth in a deep network, which ``proxy``'s one
cell per stage hides, so ``deep`` ranks the best cells of the space better at about 1.3 times the cost.
How each ranks cells against the table is measured in ``docs/fidelity.md``."""


def get_fidelity(fidelity: str | Fidelity) -> Fidelity:
    """Resolve a preset name or pass a ``Fidelity`` through.

    Raises:
        ValueError: Unknown preset name; the message lists the presets.
    """
    if isinstance(fidelity, Fidelity):
        return fidelity
    check_choice("fidelity", fidelity, FIDELITIES)
    return FIDELITIES[fidelity]
