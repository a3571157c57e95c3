"""Train a CNN supernet's shared weights on the children an agent samples, and score children with them.

ENAS (Pham et al., ICML 2018, https://arxiv.org/abs/1802.03268, section 2.2) alternates two
phases: the shared weights take SGD steps on minibatches, each step on a child sampled by the
controller, and the controller is rewarded with a child's accuracy on a validation minibatch under
the current shared weights. :class:`SharedWeightTrainer` does both halves for one child at a time;
the env decides the order (score, then train: see :mod:`nas_env.evaluators.weight_sharing`).

Everything random (initial weights, training minibatches and their augmentation, validation
minibatches) comes from generators seeded once, whose states are part of
:meth:`SharedWeightTrainer.state_dict`, so a run restored from a checkpoint continues exactly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Self

import numpy as np
import torch
import torch.nn.functional as F

from nas_env.builders.supernet import CnnSupernet
from nas_env.data.cifar import CifarSplits
from nas_env.errors import check_choice
from nas_env.search_spaces.base import SearchSpace
from nas_env.search_spaces.cnn import CnnSearchSpace
from nas_env.training.cifar import PAD, BatchAugment, downsample
from nas_env.training.recipes import RESOLUTIONS, recipe_fingerprint

SHARED_TRAINER_VERSION = 1
"""Bumped whenever the shared-weight training code changes results; part of the fingerprint."""


@dataclass(frozen=True)
class SharedRecipe:
    """How the shared weights are trained and how a child is scored with them.

    Defaults follow ENAS's macro search on CIFAR-10 (section 3.1 and its released code) where it
    gives a value, scaled to a CPU where it cannot (resolution, minibatch sizes).
    """

    shared_steps: int = 2
    """Shared-weight SGD steps on each child the agent samples, after it is scored (ENAS: one step
    per minibatch, a freshly sampled child each; 1 pass = 351 steps of 128 images per epoch)."""
    valid_batch: int = 128
    """Validation images a child is scored on: one minibatch, drawn afresh for every child (ENAS)."""
    batch_size: int = 64
    """Training images per shared-weight step (ENAS: 128)."""
    lr: float = 0.05
    """SGD learning rate, constant (ENAS: cosine from 0.05; a search here has no fixed length)."""
    momentum: float = 0.9
    """Nesterov momentum (ENAS: 0.9)."""
    weight_decay: float = 1e-4
    """L2 weight decay (ENAS macro search: 1e-4)."""
    grad_clip: float = 5.0
    """Clip the gradient's global norm to this value (ENAS: 5); 0 turns clipping off."""
    augment: bool = True
    """Random crop and horizontal flip of training images (ENAS: yes)."""
    resolution: int = 16
    """Input side in pixels: 32 (CIFAR-10's), 16 or 8 (average-pooled); 16 costs 4x less than 32."""
    train_images: int = 45_000
    """Training images minibatches are drawn from (a prefix of the 45k split)."""
    valid_images: int = 5_000
    """Validation images validation minibatches are drawn from (a prefix of the 5k split)."""
    warmup_steps: int = 0
    """Shared-weight steps on uniformly random children before the first child is scored."""

    def __post_init__(self) -> None:
        """Validate every field, naming the bad value."""
        for name in ("shared_steps", "warmup_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}={value!r} must be an integer >= 0 (shared-weight steps)")
        for name in ("valid_batch", "batch_size", "train_images", "valid_images"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer (images)")
        if self.train_images > 45_000 or self.valid_images > 5_000:
            raise ValueError(
                f"train_images={self.train_images} / valid_images={self.valid_images} exceed the "
                "45,000/5,000 split"
            )
        if self.valid_batch > self.valid_images:
            raise ValueError(f"valid_batch={self.valid_batch} exceeds valid_images={self.valid_images}")
        if not self.lr > 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError(
                f"bad optimiser setting: lr={self.lr!r} (> 0), momentum={self.momentum!r} (in [0, 1)), "
                f"weight_decay={self.weight_decay!r} (>= 0), grad_clip={self.grad_clip!r} (>= 0)"
            )
        check_choice("resolution", self.resolution, RESOLUTIONS)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Self:
        """Build from keyword arguments, naming an unknown one (with a "did you mean") and the allowed ones.

        Raises:
            ValueError: An unknown field or a bad value.
        """
        allowed = [f.name for f in fields(cls)]
        for key in kwargs:
            check_choice("weight-sharing setting", key, allowed)
        return cls(**kwargs)

    @property
    def fingerprint(self) -> str:
        """Stable short hash of the recipe and the trainer version."""
        return recipe_fingerprint({**asdict(self), "version": SHARED_TRAINER_VERSION})


class SharedWeightTrainer:
    """The supernet, its optimizer and its data streams: trains on children, scores children.

    Args:
        space: The search space configuration the supernet covers.
        recipe: Training and scoring settings.
        data: CIFAR-10 splits (uint8); the first ``recipe.train_images`` / ``valid_images`` are used.
        seed: Root of the initial weights and the training and validation minibatch streams.
        device: Where the supernet runs.
    """

    def __init__(
        self,
        space: SearchSpace[Any],
        recipe: SharedRecipe,
        data: CifarSplits,
        seed: int,
        device: torch.device | str = "cpu",
    ) -> None:
        self.recipe = recipe
        self.device = torch.device(device)
        init_seed, train_seed, valid_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(3))
        self.supernet = self._build_supernet(space, init_seed).to(self.device)
        self.optimizer = torch.optim.SGD(
            self._param_groups(),
            lr=recipe.lr,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
            nesterov=recipe.momentum > 0,
        )
        res = recipe.resolution
        self.train_x = downsample(data.train_x[: recipe.train_images], res).to(self.device)
        self.train_y = data.train_y[: recipe.train_images].to(self.device)
        self.valid_x = downsample(data.valid_x[: recipe.valid_images], res).to(self.device)
        self.valid_y = data.valid_y[: recipe.valid_images].to(self.device)
        self.prep = BatchAugment(self.device, recipe.augment, pad=PAD * res // 32)
        self.train_gen = torch.Generator().manual_seed(train_seed)
        self.valid_gen = torch.Generator().manual_seed(valid_seed)
        self.step = 0
        """Shared-weight SGD steps taken so far (warm-up included)."""

    def _build_supernet(self, space: SearchSpace[Any], seed: int) -> Any:
        """The shared weights (subclasses build the supernet of their space)."""
        assert isinstance(space, CnnSearchSpace)
        return CnnSupernet(space, seed=seed)

    def _param_groups(self) -> list[dict[str, Any]]:
        """Optimizer groups: the classifier bias, then one per layer (layers added later get their own)."""
        return [{"params": [self.supernet.bias]}] + [
            {"params": list(layer.parameters())} for layer in self.supernet.layers
        ]

    def _grow(self, arch: Any) -> None:
        """Create the layers a deeper child needs and hand them to the optimizer."""
        for layer in self.supernet.grow(max(arch.num_layers, self.supernet.num_layers)):
            self.optimizer.add_param_group({"params": list(layer.parameters())})

    # ---- scoring --------------------------------------------------------------------------------

    def accuracy(self, arch: Any, indices: torch.Tensor | None = None, batch: int = 1000) -> float:
        """Accuracy of ``arch`` with the shared weights on validation images ``indices`` (default: all used).

        Batch norm normalises with the statistics of each batch of ``batch`` images; the scores
        of the search use one minibatch of ``recipe.valid_batch`` images (:meth:`score`).
        """
        return self.accuracy_and_loss(arch, indices, batch)[0]

    @torch.no_grad()
    def accuracy_and_loss(
        self, arch: Any, indices: torch.Tensor | None = None, batch: int = 1000
    ) -> tuple[float, float]:
        """Accuracy and mean cross-entropy of ``arch`` on validation images ``indices`` (as :meth:`accuracy`).

        The loss ranks children more finely than the accuracy on the same images (it moves with
        every image's confidence, not only with the ones that change class).
        """
        self.supernet.check_arch(arch)
        self._grow(arch)
        if indices is None:
            indices = torch.arange(len(self.valid_x))
        correct, loss = 0, 0.0
        for start in range(0, len(indices), batch):
            idx = indices[start : start + batch].to(self.device)
            logits = self.supernet(self.prep(self.valid_x[idx], None), arch)
            correct += int((logits.argmax(1) == self.valid_y[idx]).sum())
            loss += float(F.cross_entropy(logits.float(), self.valid_y[idx], reduction="sum"))
        return correct / len(indices), loss / len(indices)

    def score(self, arch: Any) -> float:
        """Accuracy of ``arch`` on the next validation minibatch of the seeded stream (the reward)."""
        idx = torch.randperm(len(self.valid_x), generator=self.valid_gen)[: self.recipe.valid_batch]
        return self.accuracy(arch, idx, batch=self.recipe.valid_batch)

    # ---- training -------------------------------------------------------------------------------

    def train(self, arch: Any, steps: int) -> float:
        """Take ``steps`` SGD steps of the shared weights on child ``arch``; return their mean loss.

        A step whose loss is not finite is not applied (the shared weights stay usable).

        Raises:
            FloatingPointError: Some step's loss was NaN or infinite (after the finite ones were applied).
        """
        self.supernet.check_arch(arch)
        self._grow(arch)
        self.supernet.train()
        losses = []
        for _ in range(steps):
            idx = torch.randint(len(self.train_x), (self.recipe.batch_size,), generator=self.train_gen)
            xb = self.prep(self.train_x[idx.to(self.device)], self.train_gen)
            loss = F.cross_entropy(self.supernet(xb, arch), self.train_y[idx.to(self.device)])
            value = float(loss.detach())
            self.optimizer.zero_grad(set_to_none=True)
            if not math.isfinite(value):
                raise FloatingPointError(f"shared-weight training loss is {value} at step {self.step}")
            loss.backward()
            if self.recipe.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.supernet.parameters(), self.recipe.grad_clip)
            self.optimizer.step()
            self.step += 1
            losses.append(value)
        return float(np.mean(losses)) if losses else float("nan")

    def warm_up(self, steps: int, rng: np.random.Generator) -> None:
        """Take ``steps`` shared-weight steps, each on a uniformly random child drawn from ``rng``."""
        space = self.supernet.space
        for _ in range(steps):
            self.train(space.decode(space.sample(rng)), 1)

    # ---- checkpoints ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Supernet, optimizer, both minibatch generators and the step count (plain types and tensors)."""
        return {
            "num_layers": self.supernet.num_layers,
            "supernet": {k: v.detach().cpu() for k, v in self.supernet.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "train_gen": self.train_gen.get_state(),
            "valid_gen": self.valid_gen.get_state(),
            "step": self.step,
            "recipe": self.recipe.fingerprint,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the supernet grows to the saved depth first).

        Raises:
            ValueError: The state was saved with another recipe.
        """
        if state["recipe"] != self.recipe.fingerprint:
            raise ValueError(
                f"the saved shared weights were trained with recipe {state['recipe']}, this env's is "
                f"{self.recipe.fingerprint}; resume with the same weight-sharing settings"
            )
        for layer in self.supernet.grow(int(state["num_layers"])):
            self.optimizer.add_param_group({"params": list(layer.parameters())})
        self.supernet.load_state_dict(state["supernet"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.train_gen.set_state(state["train_gen"])
        self.valid_gen.set_state(state["valid_gen"])
        self.step = int(state["step"])
