"""The paper's controller: an autoregressive LSTM trained with REINFORCE and a moving-average baseline.

Zoph & Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017
(https://arxiv.org/abs/1611.01578), sections 3.1 to 3.3 and 4.1.

The controller reads the env's token schedule (which token type comes at each step and how many
choices it has), so the same code drives every env of this package. Each step it embeds the
previous token, runs a 2-layer LSTM, and samples the next token from the softmax head of that
step's token type. Skip connections (tokens of kind ``"anchor"``) use the paper's anchor-point
attention: after layer ``i``'s other tokens the controller takes one more step whose state is
layer ``i``'s anchor state ``h_i``, and P(layer ``j`` feeds layer ``i``) =
sigmoid(vᵀ tanh(W_prev·h_j + W_curr·h_i)), sampled as independent yes/no decisions.

A batch of ``m`` architectures is sampled together (one LSTM call per step for the whole batch,
no gradients); the update recomputes their log-probabilities in a single teacher-forced LSTM pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.base import AnyEnv, AskTellAgent
from agents.plan import AFTER_ANCHOR, ANCHOR, START, Plan, make_plan, token_vocab
from nas_env.records import TokenSpec
from nas_env.threads import torch_threads


@dataclass(frozen=True)
class ReinforceConfig:
    """Hyperparameters of the controller and its training; defaults are the paper's."""

    hidden_size: int = 35
    """LSTM hidden units per layer (section 4.1: 35)."""
    num_lstm_layers: int = 2
    """Stacked LSTM layers (section 4.1: two)."""
    init_range: float = 0.08
    """Weights are initialised uniformly in [-init_range, init_range] (section 4.1: 0.08)."""
    learning_rate: float = 6e-4
    """Adam learning rate (section 4.1: 0.0006)."""
    batch_size: int = 8
    """Architectures per policy-gradient update, m (section 3.4: m = 8 children per controller)."""
    ema_decay: float = 0.99
    """Decay of the moving-average reward baseline b, applied once per architecture.

    The paper gives none. 0.99 per architecture averages over about the last 100 children (12
    batches): long enough to smooth the seed-to-seed noise of child training, short enough to
    follow the reward as it climbs over the thousands of samples of a run; ENAS uses the same
    value. The baseline starts at the first batch's mean reward.
    """
    entropy_weight: float = 0.0
    """Weight of an entropy bonus on the sampled sequences (not in the paper: 0)."""
    max_grad_norm: float = 0.0
    """Clip the gradient's global norm to this value; 0 disables clipping (the paper does not clip)."""
    depth_schedule: bool = False
    """Grow the depth during search (section 4.1): start_layers, +layers_increment every increment_every."""
    start_layers: int = 6
    """First depth of the depth schedule (section 4.1: 6)."""
    layers_increment: int = 2
    """Layers added at each growth (section 4.1: 2)."""
    increment_every: int = 1600
    """Sampled architectures between growths (section 4.1: 1,600)."""
    max_layers: int = 15
    """Largest depth of the schedule (section 4.1: the best network found has 15 layers)."""

    def __post_init__(self) -> None:
        """Validate, naming the bad value and the allowed range."""
        positive = ("hidden_size", "num_lstm_layers", "batch_size", "start_layers", "increment_every")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        if not 0 < self.init_range <= 1:
            raise ValueError(f"init_range={self.init_range!r} must be in (0, 1]")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate={self.learning_rate!r} must be positive")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay={self.ema_decay!r} must be in [0, 1)")
        if self.entropy_weight < 0 or self.max_grad_norm < 0:
            raise ValueError(
                f"entropy_weight={self.entropy_weight!r} and max_grad_norm={self.max_grad_norm!r} "
                "must be >= 0"
            )
        if self.layers_increment < 0 or self.max_layers < self.start_layers:
            raise ValueError(
                f"need layers_increment >= 0 and max_layers >= start_layers; got layers_increment="
                f"{self.layers_increment}, start_layers={self.start_layers}, max_layers={self.max_layers}"
            )

    def num_layers(self, num_sampled: int) -> int:
        """Depth of the next batch after ``num_sampled`` sampled architectures (the depth schedule)."""
        grown = self.start_layers + self.layers_increment * (num_sampled // self.increment_every)
        return min(self.max_layers, grown)


# ---- the controller -------------------------------------------------------------------------------


class Controller(nn.Module):
    """The paper's controller: embeddings, a stacked LSTM, one softmax head per token type, anchor attention.

    Args:
        vocab: Size of the head of every non-anchor token type (its most choices at any step;
            a step with fewer choices uses the first ones).
        config: Sizes and initialisation range.
    """

    def __init__(self, vocab: dict[str, int], config: ReinforceConfig) -> None:
        super().__init__()
        self.vocab = dict(sorted(vocab.items()))
        self.offsets: dict[str, int] = {}
        size = 2  # START and AFTER_ANCHOR
        for kind, n in self.vocab.items():
            self.offsets[kind] = size
            size += n
        h = config.hidden_size
        self.embedding = nn.Embedding(size, h)
        self.lstm = nn.LSTM(h, h, num_layers=config.num_lstm_layers, batch_first=True)
        self.heads = nn.ModuleDict({kind: nn.Linear(h, n) for kind, n in self.vocab.items()})
        self.w_prev = nn.Linear(h, h, bias=False)
        self.w_curr = nn.Linear(h, h, bias=False)
        self.v = nn.Linear(h, 1, bias=False)

    def reset_parameters(self, init_range: float, generator: torch.Generator) -> None:
        """Every weight uniform in [-init_range, init_range] (section 4.1)."""
        for param in self.parameters():
            nn.init.uniform_(param, -init_range, init_range, generator=generator)

    def plan(self, schedule: tuple[TokenSpec, ...]) -> Plan:
        """The (cached) :class:`Plan` of ``schedule``."""
        return make_plan(schedule, tuple(self.offsets.items()), tuple(self.vocab.items()))

    @torch.no_grad()
    def sample(self, plan: Plan, batch_size: int, generator: torch.Generator) -> list[list[int]]:
        """Sample ``batch_size`` token sequences together, one LSTM call per step."""
        tokens = torch.zeros(batch_size, plan.length, dtype=torch.long)
        x = torch.full((batch_size,), START, dtype=torch.long)
        zeros = torch.zeros(batch_size, self.lstm.hidden_size)
        state = [(zeros, zeros)] * self.lstm.num_layers
        prev_keys: list[torch.Tensor] = []  # W_prev · h_j of every anchor point so far
        for kind, index, num_choices in plan.steps:
            h = self._step(self.embedding(x), state)
            if kind != ANCHOR:
                probs = F.softmax(self.heads[kind](h)[:, :num_choices], dim=-1)
                choice = torch.multinomial(probs, 1, generator=generator)[:, 0]
                tokens[:, index] = choice
                x = choice + self.offsets[kind]
                continue
            positions, js = plan.anchor_groups[index]
            if positions.numel():
                keys = torch.stack(prev_keys, dim=1)[:, js]  # (B, n, H)
                logits = self.v(torch.tanh(keys + self.w_curr(h)[:, None])).squeeze(-1)
                u = torch.rand(logits.shape, generator=generator)
                tokens[:, positions] = (u < torch.sigmoid(logits)).long()
            prev_keys.append(self.w_prev(h))
            x = torch.full((batch_size,), AFTER_ANCHOR, dtype=torch.long)
        return tokens.tolist()

    def _step(self, x: torch.Tensor, state: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """One LSTM step for the whole batch with ``self.lstm``'s weights.

        ``torch.lstm_cell`` on the weights skips ``nn.LSTM``'s per-call checks and weight packing,
        which dominate a one-step call on a 35-unit network (``docs/agents.md`` has the figure).
        """
        for layer in range(self.lstm.num_layers):
            h, c = torch.lstm_cell(
                x,
                state[layer],
                getattr(self.lstm, f"weight_ih_l{layer}"),
                getattr(self.lstm, f"weight_hh_l{layer}"),
                getattr(self.lstm, f"bias_ih_l{layer}"),
                getattr(self.lstm, f"bias_hh_l{layer}"),
            )
            state[layer] = (h, c)
            x = h
        return x

    def log_prob(self, plan: Plan, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability and entropy of each token sequence, from one teacher-forced LSTM pass.

        Args:
            plan: Plan of the schedule the tokens follow.
            tokens: ``(B, length)`` long tensor.

        Returns:
            ``(log_prob, entropy)``, each of shape ``(B,)``: sums over the sequence's decisions.
        """
        inputs = torch.where(
            plan.prev_pos >= 0, tokens[:, plan.prev_pos.clamp(min=0)] + plan.prev_id, plan.prev_id
        )
        out, _ = self.lstm(self.embedding(inputs))  # (B, T, H)
        log_prob = out.new_zeros(tokens.shape[0])
        entropy = out.new_zeros(tokens.shape[0])
        for kind, steps, positions, valid in plan.heads:
            logits = self.heads[kind](out[:, steps])  # (B, n, C)
            if valid is not None:
                logits = logits.masked_fill(~valid, float("-inf"))
            logp = F.log_softmax(logits, dim=-1)
            log_prob = log_prob + logp.gather(-1, tokens[:, positions, None]).sum((1, 2))
            finite = logp if valid is None else logp.masked_fill(~valid, 0.0)  # 0·log 0 = 0, no NaN
            entropy = entropy - (logp.exp() * finite).sum((1, 2))
        if plan.anchor_pos.numel():
            states = out[:, plan.anchor_steps]  # (B, L, H)
            keys = self.w_prev(states)[:, plan.anchor_j] + self.w_curr(states)[:, plan.anchor_i]
            logits = self.v(torch.tanh(keys)).squeeze(-1)  # (B, n_anchor)
            sign = tokens[:, plan.anchor_pos] * 2 - 1
            log_prob = log_prob + F.logsigmoid(logits * sign).sum(1)
            p = torch.sigmoid(logits)
            entropy = entropy + F.binary_cross_entropy_with_logits(logits, p, reduction="none").sum(1)
        return log_prob, entropy


# ---- the baseline -----------------------------------------------------------------------------------


class EMABaseline:
    """Exponential moving average of rewards, b ← decay·b + (1 − decay)·R, once per architecture.

    Args:
        decay: See :attr:`ReinforceConfig.ema_decay`.
    """

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.value: float | None = None

    def current(self, rewards: list[float]) -> float:
        """The baseline for a batch with these rewards: b, or their mean before the first update."""
        return float(np.mean(rewards)) if self.value is None else self.value

    def update(self, rewards: list[float]) -> None:
        """Fold the rewards in, in order (the first call starts at their mean)."""
        if self.value is None:
            self.value = float(np.mean(rewards))
        for r in rewards:
            self.value = self.decay * self.value + (1 - self.decay) * float(r)


def policy_gradient(
    controller: Controller,
    baseline: EMABaseline,
    config: ReinforceConfig,
    plan: Plan,
    tokens: list[list[int]],
    rewards: list[float],
) -> torch.Tensor:
    """Backpropagate the REINFORCE loss of one batch into ``controller``'s gradients.

    Loss: -(1/m) Σ_k (R_k − b) log P(tokens_k) − entropy_weight · mean entropy, b the baseline
    before this batch. Gradients are zeroed first and clipped to ``max_grad_norm`` when set. Shared
    by the synchronous update and the distributed replicas, so both follow the same math.

    Returns:
        The detached loss.
    """
    advantage = torch.tensor(rewards, dtype=torch.float32) - baseline.current(rewards)
    log_prob, entropy = controller.log_prob(plan, torch.tensor(tokens, dtype=torch.long))
    loss = -(advantage * log_prob).mean() - config.entropy_weight * entropy.mean()
    controller.zero_grad(set_to_none=True)
    loss.backward()
    if config.max_grad_norm > 0:
        nn.utils.clip_grad_norm_(controller.parameters(), config.max_grad_norm)
    return loss.detach()


# ---- the search loop ---------------------------------------------------------------------------------


class ReinforceAgent(AskTellAgent):
    """REINFORCE over the paper's controller (Zoph & Le 2017, https://arxiv.org/abs/1611.01578).

    Each update samples ``batch_size`` architectures, scores each by stepping the env, then takes
    one Adam step on -(1/m) Σ_k (R_k − b) log P(tokens_k) (minus an optional entropy bonus); b is
    an EMA of the rewards seen before the batch.

    Args:
        env: A token env of this package (wrapped or vectorised).
        seed: Root seed: controller initialisation, sampling, and ``env.reset(seed=...)``.
        **overrides: Fields of :class:`ReinforceConfig`.
    """

    name = "reinforce"
    config_class = ReinforceConfig
    config: ReinforceConfig

    def __init__(self, env: AnyEnv, seed: int = 0, **overrides: Any) -> None:
        super().__init__(env, seed, **overrides)
        cfg = self.config
        init_seed, sample_seed = self.torch_seeds()
        if cfg.depth_schedule:  # read the deepest schedule so every head exists from the start
            self.runner.set_num_layers(cfg.max_layers)
        self.controller = Controller(token_vocab(self.runner.schedule()), cfg)
        self.controller.reset_parameters(cfg.init_range, torch.Generator().manual_seed(init_seed))
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=cfg.learning_rate)
        self.generator = torch.Generator().manual_seed(sample_seed)
        self.baseline = EMABaseline(cfg.ema_decay)
        self.num_sampled = 0
        self.batch: dict[str, Any] | None = None  # the batch being evaluated: tokens, depth, rewards

    def _schedule(self, num_layers: int | None) -> tuple[TokenSpec, ...]:
        return self.runner.schedule() if num_layers is None else self.runner.set_num_layers(num_layers)

    def propose(self, count: int) -> Sequence[Sequence[int]]:
        """A batch of ``batch_size`` sequences sampled together (at the depth schedule's depth)."""
        m = self.config.batch_size
        depth = self.config.num_layers(self.num_sampled) if self.config.depth_schedule else None
        plan = self.controller.plan(self._schedule(depth))
        with torch_threads(1):
            tokens = self.controller.sample(plan, m, self.generator)
        self.batch = {"tokens": tokens, "num_layers": depth, "rewards": []}
        self.num_sampled += m
        return tokens

    def observe(self, tokens: Sequence[int], reward: float, info: dict[str, Any]) -> None:
        """Collect the batch's rewards; with the last one, take the policy-gradient step."""
        assert self.batch is not None, "observe() follows propose()"
        self.batch["rewards"].append(float(reward))
        self._update_if_complete()

    def _update_if_complete(self) -> None:
        batch = self.batch
        if batch is not None and len(batch["rewards"]) == self.config.batch_size:
            with torch_threads(1):
                plan = self.controller.plan(self._schedule(batch["num_layers"]))
                self.update(plan, batch["tokens"], batch["rewards"])
            self.batch = None

    def update(self, plan: Plan, tokens: list[list[int]], rewards: list[float]) -> float:
        """One policy-gradient step on a batch; returns the loss."""
        loss = policy_gradient(self.controller, self.baseline, self.config, plan, tokens, rewards)
        self.optimizer.step()
        self.baseline.update(rewards)
        return float(loss.detach())

    # ---- checkpoints ---------------------------------------------------------------------------------

    def algorithm_state(self) -> dict[str, Any]:
        """Controller, optimizer, baseline, sampling RNG and the batch being evaluated."""
        return {
            "controller": self.controller.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "baseline": self.baseline.value,
            "generator": self.generator.get_state(),
            "num_sampled": self.num_sampled,
            "pending": self.batch,
        }

    def load_algorithm_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`algorithm_state`; a batch complete but not yet learned from is learned from now."""
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline.value = state["baseline"]
        self.generator.set_state(state["generator"])
        self.num_sampled = int(state["num_sampled"])
        self.batch = state["pending"]
        if self.batch is not None:
            self.pending = [list(t) for t in self.batch["tokens"][len(self.batch["rewards"]) :]]
            self._schedule(self.batch["num_layers"])
            self._update_if_complete()
