"""Fidelity presets: how much training a child gets before it is scored.

``paper`` is the paper's recipe (section 4.1): 50 epochs on the full 45k split, SGD with Nesterov
momentum 0.9, learning rate 0.1, weight decay 1e-4, random crop and horizontal flip, per-channel
normalisation; the reward uses the maximum validation accuracy over the last 5 epochs. ``proxy``
keeps the recipe but trains on a fixed subset for a few epochs so that a 6-layer child takes about
30 s on 2 CPU cores; ``smoke`` takes seconds and only checks that everything runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import Literal

from nas_env.errors import check_choice

Precision = Literal["fp32", "bf16"]
LrSchedule = Literal["constant", "cosine"]
TRAINER_VERSION = 1
"""Bumped whenever the training code changes results; part of every cache key."""


@dataclass(frozen=True)
class Fidelity:
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
    """The accuracy is the maximum validation accuracy over this many last epochs (paper: 5)."""
    precision: Precision = "fp32"
    """``fp32`` or ``bf16`` autocast (CPU with AMX, or CUDA). See benchmarks/bench_trainer.py."""

    def __post_init__(self) -> None:
        """Validate every field, naming the bad value."""
        for name in ("epochs", "train_images", "valid_images", "batch_size", "reward_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Fidelity.{name}={value!r} must be a positive integer")
        if self.train_images > 45_000 or self.valid_images > 5_000:
            raise ValueError(
                f"Fidelity.train_images={self.train_images} / valid_images={self.valid_images} exceed "
                "the 45,000/5,000 split"
            )
        if not self.lr > 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise ValueError(f"Fidelity has a bad optimiser setting: lr={self.lr}, momentum={self.momentum}")
        check_choice("Fidelity.lr_schedule", self.lr_schedule, ("constant", "cosine"))
        check_choice("Fidelity.precision", self.precision, ("fp32", "bf16"))

    @property
    def fingerprint(self) -> str:
        """Stable short hash of the recipe and trainer version: equal fingerprints, equal training."""
        payload = json.dumps({**asdict(self), "trainer_version": TRAINER_VERSION}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def replace(self, **changes: object) -> Fidelity:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)  # type: ignore[arg-type]


FIDELITIES: dict[str, Fidelity] = {
    "paper": Fidelity(),
    # Measured with benchmarks/bench_trainer.py on 2 idle cores: the reference 6-layer 3x3x36
    # chain trains at ~300 images/s in fp32, random 6-layer children at ~60-120 (7x7 filters and
    # concatenated skip inputs cost more). With 1,536 training images a random child took ~50 s,
    # so the proxy uses 1,024: ~10 s for the reference child, ~35 s for a typical random one.
    "proxy": Fidelity(
        epochs=2,
        train_images=1_024,
        valid_images=500,
        batch_size=64,
        lr=0.05,
        lr_schedule="cosine",
        reward_epochs=2,
    ),
    "smoke": Fidelity(epochs=1, train_images=128, valid_images=128, batch_size=64, lr=0.05, reward_epochs=1),
}
"""Named presets accepted wherever a fidelity is (``fidelity="proxy"``)."""


def get_fidelity(fidelity: str | Fidelity) -> Fidelity:
    """Resolve a preset name or pass a ``Fidelity`` through.

    Raises:
        ValueError: Unknown preset name; the message lists the presets.
    """
    if isinstance(fidelity, Fidelity):
        return fidelity
    check_choice("fidelity", fidelity, FIDELITIES)
    return FIDELITIES[fidelity]
