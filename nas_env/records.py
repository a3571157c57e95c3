"""Small records shared by search spaces, evaluators, the store and the envs."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Literal


class Metric(str, Enum):
    """Names of the metrics an evaluation can report (keys of ``EvalResult.metrics``)."""

    VAL_ACCURACY = "val_accuracy"
    """Validation accuracy in [0, 1] used for the reward (trained CNN: max over the recipe's last
    ``reward_epochs`` epochs)."""
    FINAL_VAL_ACCURACY = "final_val_accuracy"
    """Validation accuracy after the last epoch."""
    TEST_ACCURACY = "test_accuracy"
    """Test accuracy in [0, 1]; never used for a reward."""
    TRAIN_LOSS = "train_loss"
    """Mean training loss of the last epoch."""
    VAL_PERPLEXITY = "val_perplexity"
    """Validation perplexity (language models)."""
    TEST_PERPLEXITY = "test_perplexity"
    """Test perplexity (language models); never used for a reward."""
    VAL_BPC = "val_bpc"
    """Validation bits per character (character-level language models): log2 of the perplexity."""
    TEST_BPC = "test_bpc"
    """Test bits per character; never used for a reward."""


@dataclass(frozen=True)
class TokenSpec:
    """One step of a search space's token schedule: which decision is made and among how many choices.

    Agents read the schedule to size their output heads; the env reads it to build masks.
    """

    kind: str
    """Token type, e.g. ``"filter_height"`` or ``"anchor"``; equal kinds share a controller head."""
    choices: tuple[int | str, ...]
    """The values the token can take; action ``a`` selects ``choices[a]``."""
    layer: int = 0
    """Layer (or tree node) the token belongs to."""
    anchor_of: int | None = None
    """For skip-connection tokens: the earlier layer ``j`` whose output may feed ``layer``."""

    @property
    def num_choices(self) -> int:
        """Number of valid actions at this step."""
        return len(self.choices)


EvalStatus = Literal["ok", "failed"]


@dataclass(frozen=True)
class EvalResult:
    """The outcome of evaluating one architecture.

    A failed child is an ``EvalResult`` with ``status="failed"`` and the error text; it is stored
    like any other result and gets the reward function's failure value (0).
    """

    status: EvalStatus
    """``"ok"`` or ``"failed"``."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Metric name (see :class:`Metric`) to value."""
    num_params: int = 0
    """Trainable parameters of the child."""
    cost_s: float = 0.0
    """Seconds the evaluation took (training time for trained children)."""
    error: str = ""
    """Error text when ``status == "failed"``."""
    seed: int = 0
    """Seed the child was trained with."""
