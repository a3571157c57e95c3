"""Score CNN children with weights shared by all of them (ENAS), training those weights as the search goes.

Each :meth:`SharedWeightEvaluator.evaluate` call does one turn of ENAS's alternation (Pham et al.,
ICML 2018, https://arxiv.org/abs/1802.03268, section 2.2) for one child:

1. **score**: the child's accuracy on one validation minibatch with the current shared weights
   (this is the reward: the weights were trained on the children sampled before it, as ENAS's
   controller is rewarded under weights trained on its earlier samples);
2. **train**: ``shared_steps`` SGD steps of the shared weights on training minibatches, through
   this child.

The evaluator is therefore *stateful*: the same architecture scores differently as the shared
weights train, so its results are never cached as final (the env records every score with the
shared step it was measured at, and never answers a later episode from the store). It runs in the
process that owns the shared weights; it does not travel to worker processes.
"""

from __future__ import annotations

import hashlib
import os
import time
import traceback
from typing import Any

import numpy as np
import torch

from nas_env.data.cifar import SPLIT_SEED, find_cifar10, load_cifar10
from nas_env.errors import check_choice
from nas_env.evaluators.base import Evaluator, resolve_device
from nas_env.records import EvalResult, Metric
from nas_env.search_spaces.base import SearchSpace
from nas_env.search_spaces.cnn import CnnSearchSpace
from nas_env.search_spaces.nb201 import NB201SearchSpace
from nas_env.training.nb201_weight_sharing import NB201SharedRecipe, NB201SharedTrainer
from nas_env.training.weight_sharing import SharedRecipe, SharedWeightTrainer

SHARED_STEP = "shared_step"
"""Metric and ``info`` key: shared-weight steps taken before the child was scored."""


class SharedWeightEvaluator(Evaluator):
    """Scores each child with the shared weights of a supernet, then trains them on it.

    The shared weights are created on :meth:`start` (or restored by :meth:`load_state_dict`),
    from the seed the env passes: same seed, same weights, same minibatches, same scores.

    Args:
        space: The search space configuration (the supernet covers it up to ``max_layers``).
        recipe: Training and scoring settings.
        data_dir: Root holding ``cifar-10-batches-py/``; defaults to ``$NAS_ENV_DATA``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        download: Download CIFAR-10 (md5-checked) when it is not found.
    """

    metric_names: tuple[str, ...] = (Metric.VAL_ACCURACY.value, Metric.TRAIN_LOSS.value, SHARED_STEP)
    trainer_cls: type[SharedWeightTrainer] = SharedWeightTrainer
    """Builds the supernet of the space and trains it."""

    def __init__(
        self,
        space: SearchSpace[Any],
        recipe: SharedRecipe,
        data_dir: str | os.PathLike[str] | None = None,
        device: str | torch.device = "auto",
        download: bool = True,
    ) -> None:
        """Keep the settings; the data is loaded and the weights created on :meth:`start`."""
        self.space = space
        self.recipe = recipe
        self.data_dir = data_dir
        self.device = resolve_device(device)
        self.download = download
        self.trainer: SharedWeightTrainer | None = None
        self.seed: int | None = None

    @property
    def fingerprint(self) -> str:
        """Names what produced a score (split, recipe, space); not a cache key: scores are never looked up."""
        payload = f"cifar10-split{SPLIT_SEED}-shared-{self.recipe.fingerprint}-{self._space_key()}"
        return "shared-" + hashlib.sha256(payload.encode()).hexdigest()[:16]

    def _space_key(self) -> str:
        """The space configuration, as part of the fingerprint."""
        space = self.space
        assert isinstance(space, CnnSearchSpace)
        return (
            f"offset{space.filter_offset}-stride{space.predict_stride}-skip{space.skip_connections}"
            f"-pool{list(space.pool_after)}"
        )

    def check_data(self) -> None:
        """Find CIFAR-10, downloading it when allowed, without loading it (``DatasetError`` if absent)."""
        find_cifar10(self.data_dir, download_missing=self.download)

    @property
    def started(self) -> bool:
        """Whether the shared weights exist."""
        return self.trainer is not None

    def start(self, seed: int) -> SharedWeightTrainer:
        """Create the shared weights from ``seed`` (loading CIFAR-10) if absent; return the trainer."""
        if self.trainer is None:
            data = load_cifar10(self.data_dir, download_missing=self.download)
            self.trainer = self.trainer_cls(self.space, self.recipe, data, seed, self.device)
            self.seed = int(seed)
        return self.trainer

    def evaluate(self, arch: Any, seed: int) -> EvalResult:
        """Score ``arch`` on a validation minibatch, then train the shared weights on it.

        ``seed`` is recorded but changes nothing: the shared weights' streams were seeded on
        :meth:`start`. A non-finite training loss makes a ``status="failed"`` result (the score
        measured before it is kept in ``metrics``); the shared weights skip that step.

        Raises:
            RuntimeError: :meth:`start` was not called.
        """
        if self.trainer is None:
            raise RuntimeError("SharedWeightEvaluator.start(seed) must be called before evaluate()")
        trainer = self.trainer
        if trainer.step < self.recipe.warmup_steps:  # before the first child (checkpoints come after it)
            trainer.warm_up(self.recipe.warmup_steps, np.random.default_rng(self.seed))
        start = time.perf_counter()
        num_params = trainer.supernet.num_params(arch)
        metrics = {SHARED_STEP: float(trainer.step)}
        try:
            metrics[Metric.VAL_ACCURACY.value] = trainer.score(arch)
            metrics[Metric.TRAIN_LOSS.value] = trainer.train(arch, self.recipe.shared_steps)
        except (FloatingPointError, RuntimeError) as exc:
            error = "".join(traceback.format_exception_only(exc)).strip()
            cost_s = time.perf_counter() - start
            return EvalResult("failed", metrics, num_params, cost_s, error=error, seed=seed)
        return EvalResult("ok", metrics, num_params, time.perf_counter() - start, seed=seed)

    def rank(self, archs: list[Any], images: int = 1000, metric: str = "accuracy") -> list[float]:
        """Scores of ``archs`` with the current shared weights on the first ``images`` validation images.

        ENAS's last step: candidates are re-scored on more validation data with the final shared
        weights, and the best one is retrained from scratch. Deterministic (no minibatch stream).
        ``metric="accuracy"`` (higher is better) or ``"loss"`` (mean cross-entropy, lower is better;
        it ranks NB201 cells better than the accuracy on the same images, docs/weight_sharing.md).

        Raises:
            ValueError: An unknown ``metric``.
        """
        check_choice("metric", metric, ("accuracy", "loss"))
        if self.trainer is None:
            raise RuntimeError("no shared weights yet: run the search (or start(seed)) first")
        indices = torch.arange(min(images, len(self.trainer.valid_x)))
        column = 0 if metric == "accuracy" else 1
        return [self.trainer.accuracy_and_loss(arch, indices)[column] for arch in archs]

    # ---- checkpoints ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The trainer's state and the seed (empty before :meth:`start`)."""
        if self.trainer is None:
            return {}
        return {"seed": self.seed, "trainer": self.trainer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (creating the shared weights first when needed)."""
        if not state:
            return
        self.start(int(state["seed"])).load_state_dict(state["trainer"])


class NB201SharedWeightEvaluator(SharedWeightEvaluator):
    """Weight sharing on NAS-Bench-201: one NB201 supernet (:mod:`nas_env.training.nb201_weight_sharing`).

    Args:
        recipe: Network, training and scoring settings.
        data_dir, device, download: As for :class:`SharedWeightEvaluator`.
    """

    trainer_cls = NB201SharedTrainer
    recipe: NB201SharedRecipe

    def __init__(
        self,
        recipe: NB201SharedRecipe,
        data_dir: str | os.PathLike[str] | None = None,
        device: str | torch.device = "auto",
        download: bool = True,
    ) -> None:
        """Keep the settings; the data is loaded and the supernet created on :meth:`start`."""
        super().__init__(NB201SearchSpace(), recipe, data_dir, device, download)

    def _space_key(self) -> str:
        return "nb201"
