"""NAS-PTB-v0 (and NAS-PTBChar-v0): the paper's recurrent-cell search, children trained on Penn Treebank."""

from __future__ import annotations

import functools
import math
import os
from typing import Any

from nas_env.data.ptb import find_ptb
from nas_env.envs.token_env import TokenNASEnv
from nas_env.evaluation import Evaluation, zero_cost_evaluation
from nas_env.evaluators.ptb import PtbTrainingEvaluator
from nas_env.evaluators.zero_cost import ZERO_COST_FIDELITY, check_zero_cost_unused
from nas_env.rewards import inverse_squared_perplexity
from nas_env.search_spaces.rnn_cell import RnnCellSearchSpace
from nas_env.training.ptb import PtbFidelity


class PtbNASEnv(TokenNASEnv):
    """Design a recurrent cell node by node; the reward comes from a language model trained on PTB.

    Zoph & Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017
    (https://arxiv.org/abs/1611.01578), sections 3.4 and 4.2. Spaces, masks, the wrapping rule
    for masked actions, seeding and the terminal ``info`` are those of
    :class:`~nas_env.envs.token_env.TokenNASEnv`.

    ## Description

    The cell is a complete binary tree with ``base`` leaves (see
    :mod:`nas_env.search_spaces.rnn_cell`): each leaf combines a projection of ``x_t`` with one of
    ``h_{t-1}``, each inner node its two children, the root gives ``h_t``; ``c_{t-1}`` is merged
    into one node and ``c_t`` read from another. The child is a 2-layer word-level language model
    (embedding, two layers of the cell, dropout, tied softmax) trained with truncated BPTT.

    ## Action Space

    ``Discrete(max_vocab)`` with ``max_vocab = 2 * base - 1`` (15 for base 8; 4 for base 2). Per
    node: a combination {add, mul} (2 valid actions) then an activation {identity, tanh, sigmoid,
    relu} (4); then the inject node (``2 * base - 1``), inject combination (2), inject activation
    (4) and the cell-output node (``2 * base - 1``). Use ``action_masks()``; a masked action ``a``
    selects choice ``a % num_choices`` (``strict_actions=True`` raises instead).

    ## Observation Space

    ``Box(0, 1, (steps * max_vocab + 2 * steps + 1,), float32)``: one-hot tokens so far, one-hot
    position, one-hot episode length. Base 8 with memory: 34 steps, shape ``(579,)``.

    ## Rewards

    0 until the last token; then ``reward_c / val_perplexity**2`` (paper section 4.2, c = 80). A
    child whose training diverges (NaN or infinite loss) gets 0, with the error in ``info["error"]``
    and ``info["eval_status"] == "failed"``.

    ## Starting State

    No tokens chosen. The space has a fixed size (``reset`` takes no ``num_layers`` option).

    ## Episode End

    Terminates after the cell-output token (after the root's activation without memory); never
    truncates. Terminal ``info``: ``arch``, ``val_perplexity``, ``train_loss``, ``num_params``,
    ``train_seconds``, ``cached``, ``eval_status``, ``error``, ``seed``, ``cost_s`` (and
    ``val_bpc`` for NAS-PTBChar-v0).

    ## Arguments

    Its own, besides the common ones of :class:`~nas_env.envs.token_env.TokenNASEnv`
    (``data_dir``: the root holding ``ptb/``; ``download``: the word-level files):

    | name           | type               | default | meaning                                               |
    |----------------|--------------------|---------|-------------------------------------------------------|
    | base           | int                | 8       | leaves of the cell tree: 2, 4 or 8 (paper: 8)         |
    | memory         | bool               | True    | search the cell inject / cell output blocks           |
    | fidelity       | str or PtbFidelity | "proxy" | "paper", "proxy" (docs/ptb.md), "smoke"               |
    |                |                    |         | or "zero_cost" (untrained score, docs/zero_cost.md)   |
    | zero_cost      | str or None        | None    | with fidelity="zero_cost": params, snip or grad_norm  |
    | reward_c       | float              | 80.0    | c of the reward c / perplexity**2                     |

    ## Example

    >>> import gymnasium as gym, nas_env
    >>> env = gym.make("NAS-PTB-v0", base=2, fidelity="smoke")
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape, int(info["action_mask"].sum())
    ((61,), 2)

    ## Version History

    * v0: Initial version.
    * v0, reworked ``proxy``: 64 units, 200k training tokens, Adam 1e-2, softmax bias
      started at the unigram frequencies (``PtbFidelity.unigram_bias``), chosen by Kendall tau
      (docs/ptb.md). The reward's definition is unchanged, its values and cache keys are not
      (NAS-PTBChar-v0 shares the presets); the id was not bumped: pin ``fidelity=PtbFidelity(...)``
      to reproduce old figures.
    * v0, ``proxy`` with an adaptive softmax (``PtbFidelity.adaptive_softmax=2000``) and 600k
      training tokens: three times the tokens at about twice the speed, so cells learn context
      well past the unigram model (figures in docs/ptb.md). Values and cache keys changed again;
      NAS-PTBChar-v0's ``proxy`` keeps the full softmax over its characters.
    """

    level = "word"

    def __init__(
        self,
        base: int = 8,
        memory: bool = True,
        fidelity: str | PtbFidelity = "proxy",
        reward_c: float = 80.0,
        cache_path: str | os.PathLike[str] | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        device: str = "auto",
        download: bool = True,
        strict_actions: bool = False,
        render_mode: str | None = None,
        backend: str = "local",
        backend_kwargs: dict[str, Any] | None = None,
        zero_cost: str | None = None,
    ) -> None:
        """Build the space, evaluator and reward from flat keyword arguments (see the table).

        Raises:
            ValueError: A bad argument (``base`` not in {2, 4, 8}, unknown fidelity, ``reward_c <= 0``).
            DatasetError: NAS-PTBChar-v0 without the character-level files.
        """
        if isinstance(reward_c, bool) or not isinstance(reward_c, int | float) or not 0 < reward_c < math.inf:
            raise ValueError(f"reward_c={reward_c!r} must be a positive finite number (paper: 80)")
        space = RnnCellSearchSpace(base=base, memory=memory)
        if self.level == "char":
            find_ptb(data_dir, "char", download_missing=False)  # fail at make time, not mid-search
        if fidelity == ZERO_COST_FIDELITY:
            evaluation = zero_cost_evaluation(
                "ptb", zero_cost, data_dir, device, download, cache_path, backend, backend_kwargs, self.level
            )
        else:
            check_zero_cost_unused(zero_cost)
            evaluator = PtbTrainingEvaluator(
                fidelity, data_dir=data_dir, device=device, download=download, level=self.level
            )
            reward_fn = functools.partial(inverse_squared_perplexity, c=float(reward_c))
            evaluation = Evaluation(evaluator, reward_fn, cache_path, backend, backend_kwargs)
        super().__init__(space, evaluation, strict_actions, render_mode)

    def fidelity_kwargs(self, fidelity: str) -> dict[str, Any]:
        """Score children at another ``fidelity`` (successive halving).

        A zero-cost first rung's ``zero_cost=`` does not carry over to the trained rungs.
        """
        return {"fidelity": fidelity, "zero_cost": None}


class PtbCharNASEnv(PtbNASEnv):
    """NAS-PTBChar-v0: as :class:`PtbNASEnv` on character-level Penn Treebank.

    Needs ``ptb.char.{train,valid,test}.txt`` under ``$NAS_ENV_DATA/ptb`` (Mikolov's
    simple-examples); making the env without them raises
    :class:`~nas_env.errors.DatasetError`. The reward is ``reward_c / perplexity**2`` on the
    character perplexity; ``info["val_bpc"]`` holds bits per character (``log2`` of it).

    Same arguments as NAS-PTB-v0 (``download`` only concerns word-level files).

    ## Version History

    * v0: Initial version.
    """

    level = "char"
