"""NAS-Bench-201's own REINFORCE: a factorized softmax policy over each token, updated per architecture.

Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture Search", ICLR
2020 (https://arxiv.org/abs/2001.00326), section 5, whose code is
``exps/NAS-Bench-201-algos/reinforce.py`` in D-X-Y/AutoDL-Projects (kept as
``exps/NATS-algos/reinforce.py`` for NATS-Bench, Dong et al., TPAMI 2021):

- the policy is one table of logits per edge (here: per token of the env's schedule), initialised
  to ``1e-3 * N(0, 1)``; an architecture samples every token independently from its softmax;
- after *each* architecture, the EMA baseline takes in the reward first (momentum 0.9, with the
  bias correction of a numerator / denominator average), then one Adam step on
  ``-log P(tokens) * (reward - baseline)``;
- Adam's learning rate is 0.01, the value NATS-Bench's ``exps/NATS-algos/run-all.sh`` runs for
  every dataset; NB201's ``REINFORCE.sh`` takes it as an argument (its usage line shows 0.001) and
  ``hps/GRID-RL.sh`` swept 0.01 to 0.5.

Unlike the paper's LSTM controller (:mod:`agents.reinforce`, Adam 6e-4 over batches of 8, built for
thousands of samples), this policy moves within a few dozen architectures. NB201's rewards are
accuracies in percent and ours fractions in [0, 1]; Adam's steps do not depend on that scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.base import AnyEnv, AskTellAgent
from nas_env.threads import torch_threads


@dataclass(frozen=True)
class NB201ReinforceConfig:
    """Hyperparameters of NB201's REINFORCE; defaults are NB201's / NATS-Bench's values."""

    learning_rate: float = 0.01
    """Adam learning rate (NATS-Bench ``run-all.sh``: 0.01; NB201 swept 0.001 to 0.5)."""
    ema_momentum: float = 0.9
    """Momentum of the reward baseline's moving average (NB201 ``REINFORCE.sh``: 0.9)."""
    init_std: float = 1e-3
    """Standard deviation of the logits' Gaussian initialisation (NB201: ``1e-3 * randn``)."""

    def __post_init__(self) -> None:
        """Validate, naming the bad value and the allowed range."""
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate={self.learning_rate!r} must be positive")
        if not 0 <= self.ema_momentum < 1:
            raise ValueError(f"ema_momentum={self.ema_momentum!r} must be in [0, 1)")
        if not self.init_std >= 0:
            raise ValueError(f"init_std={self.init_std!r} must be >= 0")


class FactorizedPolicy(nn.Module):
    """Independent categorical distributions, one per token (NB201's ``Policy.arch_parameters``).

    Args:
        num_choices: Choices of each token, in schedule order; a step with fewer choices than the
            largest masks the rest out.
    """

    def __init__(self, num_choices: list[int]) -> None:
        super().__init__()
        width = max(num_choices)
        self.logits = nn.Parameter(torch.zeros(len(num_choices), width))
        self.valid: torch.Tensor
        self.register_buffer("valid", torch.arange(width)[None, :] < torch.tensor(num_choices)[:, None])

    def log_probs(self) -> torch.Tensor:
        """Log-softmax of every step's logits, ``-inf`` where a choice does not exist."""
        return torch.log_softmax(self.logits.masked_fill(~self.valid, float("-inf")), dim=-1)

    def sample(self, generator: torch.Generator) -> list[int]:
        """One token per step, each from its own softmax."""
        with torch.no_grad():
            probs = self.log_probs().exp()
        return [int(t) for t in torch.multinomial(probs, 1, generator=generator).squeeze(1)]

    def log_prob(self, tokens: list[int]) -> torch.Tensor:
        """Log-probability of a whole token sequence (sum over steps)."""
        index = torch.tensor(tokens, dtype=torch.long)
        return self.log_probs().gather(1, index[:, None]).sum()


class BiasCorrectedEMA:
    """NB201's ``ExponentialMovingAverage``: numerator / denominator, so the first value is exact.

    Args:
        momentum: Weight of the past (:attr:`NB201ReinforceConfig.ema_momentum`).
    """

    def __init__(self, momentum: float) -> None:
        self.momentum = momentum
        self.numerator = 0.0
        self.denominator = 0.0

    def update(self, value: float) -> None:
        """Fold one reward in."""
        self.numerator = self.momentum * self.numerator + (1 - self.momentum) * value
        self.denominator = self.momentum * self.denominator + (1 - self.momentum)

    def value(self) -> float:
        """The current average (call :meth:`update` first)."""
        return self.numerator / self.denominator


class NB201ReinforceAgent(AskTellAgent):
    """NAS-Bench-201's REINFORCE (Dong & Yang, ICLR 2020, https://arxiv.org/abs/2001.00326).

    One factorized softmax per token, an EMA baseline with momentum 0.9, one Adam step (learning
    rate 0.01) after every architecture. On a vector env of ``n`` sub-envs, ``n`` architectures
    are sampled from the same policy and the per-architecture updates are applied in order.

    Args:
        env: A token env of this package (wrapped or vectorised).
        seed: Root seed: initial logits, sampling, and ``env.reset(seed=...)``.
        **overrides: Fields of :class:`NB201ReinforceConfig`.
    """

    name = "reinforce_nb201"
    config_class = NB201ReinforceConfig
    config: NB201ReinforceConfig

    def __init__(self, env: AnyEnv, seed: int = 0, **overrides: Any) -> None:
        super().__init__(env, seed, **overrides)
        init_seed, sample_seed = self.torch_seeds()
        self.policy = FactorizedPolicy([spec.num_choices for spec in self.runner.schedule()])
        init = torch.Generator().manual_seed(init_seed)
        with torch.no_grad():
            self.policy.logits.copy_(
                self.config.init_std * torch.randn(self.policy.logits.shape, generator=init)
            )
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.config.learning_rate)
        self.generator = torch.Generator().manual_seed(sample_seed)
        self.baseline = BiasCorrectedEMA(self.config.ema_momentum)

    def propose(self, count: int) -> Sequence[Sequence[int]]:
        """``count`` sequences sampled from the current policy."""
        return [self.policy.sample(self.generator) for _ in range(count)]

    def observe(self, tokens: Sequence[int], reward: float, info: dict[str, Any]) -> None:
        """One policy-gradient step per architecture, as NB201 does."""
        with torch_threads(1):
            self.update(list(tokens), reward)

    def update(self, tokens: list[int], reward: float) -> float:
        """NB201's step: baseline first, then Adam on ``-log P(tokens) * (reward - baseline)``."""
        self.baseline.update(reward)
        loss = -self.policy.log_prob(tokens) * (reward - self.baseline.value())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def probabilities(self) -> np.ndarray:
        """The policy's current probabilities, ``(steps, max choices)`` (for inspection and tests)."""
        with torch.no_grad():
            return self.policy.log_probs().exp().numpy()

    # ---- checkpoints ---------------------------------------------------------------------------------

    def algorithm_state(self) -> dict[str, Any]:
        """Logits, optimizer, baseline and sampling RNG."""
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "baseline": (self.baseline.numerator, self.baseline.denominator),
            "generator": self.generator.get_state(),
        }

    def load_algorithm_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`algorithm_state`."""
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline.numerator, self.baseline.denominator = (float(v) for v in state["baseline"])
        self.generator.set_state(state["generator"])
