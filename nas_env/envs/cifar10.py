"""NAS-CIFAR10-v0: the paper's CNN search space, children trained on CIFAR-10."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from nas_env.envs.token_env import TokenNASEnv
from nas_env.evaluation import Evaluation, SharedWeightEvaluation, zero_cost_evaluation
from nas_env.evaluators.cifar import CifarTrainingEvaluator
from nas_env.evaluators.weight_sharing import SharedWeightEvaluator
from nas_env.evaluators.zero_cost import ZERO_COST_FIDELITY, check_zero_cost_unused
from nas_env.rewards import get_reward
from nas_env.search_spaces.cnn import CnnSearchSpace
from nas_env.training.recipes import Fidelity
from nas_env.training.weight_sharing import SharedRecipe


class CifarNASEnv(TokenNASEnv):
    """Design a CNN layer by layer; the reward comes from training it on CIFAR-10.

    Zoph & Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017
    (https://arxiv.org/abs/1611.01578), sections 3.1, 3.3 and 4.1. Spaces, rewards and episode
    rules are those of :class:`~nas_env.envs.token_env.TokenNASEnv`.

    ## Tokens per layer

    filter height {1,3,5,7}, filter width {1,3,5,7}, number of filters {24,36,48,64}, the stride
    {1,2,3} when ``predict_stride``, then with ``skip_connections`` one yes/no token per earlier
    layer (is it an input of this layer?). A 6-layer episode with skip connections has 33 steps.

    ## Rewards

    ``reward="paper"`` (default): the child's maximum validation accuracy over the last epochs
    (5 at the paper fidelity), cubed. ``reward="accuracy"``: that accuracy itself.

    ## Weight sharing (ENAS)

    ``weight_sharing=True`` scores children as Efficient NAS does (Pham et al., ICML 2018,
    https://arxiv.org/abs/1802.03268): every child's layers are slices of one supernet over this
    space (:mod:`nas_env.builders.supernet`). At an episode's end the child's accuracy on one
    validation minibatch of ``valid_batch`` images with the shared weights is the accuracy the
    reward transforms (``reward="paper"`` cubes it, ``"accuracy"`` keeps it); then the shared
    weights take ``shared_steps`` SGD steps on training minibatches through that child (ENAS's
    alternation, :mod:`nas_env.evaluators.weight_sharing`). ``fidelity`` is not used. The terminal
    ``info`` also has ``weight_sharing=True`` and ``shared_step`` (the shared-weight steps taken
    before the score); ``cached`` is always False: a score depends on the shared weights of its
    moment, so every score is recorded in the results store with its ``shared_step`` and none is
    ever served to a later episode. The shared weights persist across episodes and resets
    (``reset(seed=...)`` does not re-create them: make a new env to start over); they are created
    from the first seeded reset's seed, and :meth:`state_dict` / :meth:`load_state_dict` save and
    restore them with their optimizer and minibatch streams (``nas-search`` puts them into its
    checkpoints). Children are scored in this process (``backend="local"`` only).

    ## Arguments

    Its own, besides the common ones of :class:`~nas_env.envs.token_env.TokenNASEnv`
    (``cache_path``, ``data_dir``, ``device``, ``download``, ``strict_actions``, ``render_mode``,
    ``backend``, ``backend_kwargs``; ``data_dir`` is the CIFAR-10 root):

    | name             | type              | default   | meaning                                        |
    |------------------|-------------------|-----------|------------------------------------------------|
    | num_layers       | int               | 6         | depth; change per episode with reset options   |
    | max_layers       | int               | 15        | largest depth (fixes the observation size)     |
    | predict_stride   | bool              | False     | add a stride token per layer                   |
    | skip_connections | bool              | True      | anchor tokens choose inputs (else a chain)     |
    | pool_after       | tuple[int, ...]   | ()        | 2x2 max-pool after these layers (0-based)      |
    | filter_offset    | int               | 0         | added to every layer's filters ("+40 filters") |
    | fidelity         | str or Fidelity   | "proxy"   | "paper", "proxy", "smoke" or a Fidelity;       |
    |                  |                   |           | "zero_cost": untrained score (zero_cost.md)    |
    | zero_cost        | str or None       | None      | with fidelity="zero_cost": the score (ensemble)|
    | reward           | str               | "paper"   | "paper" (accuracy cubed) or "accuracy"         |
    | weight_sharing   | bool              | False     | score children with shared weights (ENAS)      |
    | shared_steps     | int or None       | None (2)  | shared-weight steps per child (weight sharing) |
    | valid_batch      | int or None       | None (128)| validation images per score (weight sharing)   |
    | shared_kwargs    | dict or None      | None      | other ``SharedRecipe`` fields (lr, resolution) |

    ## Example

    >>> import gymnasium as gym, nas_env
    >>> env = gym.make("NAS-CIFAR10-v0", num_layers=2, max_layers=2, fidelity="smoke")
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape, int(info["action_mask"].sum())
    ((43,), 4)
    >>> for action in [1, 1, 1, 1, 1, 1, 1]:  # two 3x3 convs of 36 filters; layer 0 feeds layer 1
    ...     obs, reward, terminated, truncated, info = env.step(action)
    >>> terminated, info["arch"], 0 <= info["val_accuracy"] <= 1
    (True, '3x3:36 | 3x3:36 <0', True)

    ## Version History

    * v0: Initial version; ``weight_sharing`` added later (off by default: nothing else changed).
    * v0, second wave: the default ``proxy`` preset was reworked (16x16, 10k images x 3 epochs,
      5,000 validation images; it ranks far more reproducibly, see docs/fidelity.md). The reward's
      definition is unchanged but its values differ: TRAINER_VERSION 2 re-keys every cached
      reward. The id was not bumped; pin ``fidelity=Fidelity(...)`` to reproduce old figures.
    * v0, later in the second wave: ``proxy`` trains 5 epochs instead of 3 (it ranks closer to a
      10-epoch 32x32 reference at more seconds per child, docs/fidelity.md); its cache key changed.
    """

    def __init__(
        self,
        num_layers: int = 6,
        max_layers: int = 15,
        predict_stride: bool = False,
        skip_connections: bool = True,
        pool_after: Sequence[int] = (),
        filter_offset: int = 0,
        fidelity: str | Fidelity = "proxy",
        reward: str = "paper",
        cache_path: str | os.PathLike[str] | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        device: str = "auto",
        download: bool = True,
        strict_actions: bool = False,
        render_mode: str | None = None,
        backend: str = "local",
        backend_kwargs: dict[str, Any] | None = None,
        weight_sharing: bool = False,
        shared_steps: int | None = None,
        valid_batch: int | None = None,
        shared_kwargs: dict[str, Any] | None = None,
        zero_cost: str | None = None,
    ) -> None:
        """Build the space, evaluator and reward from flat keyword arguments (see the table).

        Raises:
            ValueError: A bad value, weight-sharing settings without ``weight_sharing=True``, or
                weight sharing with another backend than ``"local"``; the message names it.
        """
        space = CnnSearchSpace(
            num_layers=num_layers,
            max_layers=max_layers,
            predict_stride=predict_stride,
            skip_connections=skip_connections,
            pool_after=tuple(pool_after),
            filter_offset=filter_offset,
        )
        given = {"shared_steps": shared_steps, "valid_batch": valid_batch, "shared_kwargs": shared_kwargs}
        given = {k: v for k, v in given.items() if v is not None}
        reward_fn = get_reward(reward)
        evaluation: Evaluation
        if weight_sharing:
            if backend != "local":
                raise ValueError(
                    f"weight_sharing=True needs backend='local', got backend={backend!r}: the shared "
                    "weights live in this process"
                )
            settings = {k: v for k, v in given.items() if k != "shared_kwargs"}
            recipe = SharedRecipe.from_kwargs(**(dict(shared_kwargs or {}) | settings))
            evaluator = SharedWeightEvaluator(
                space, recipe, data_dir=data_dir, device=device, download=download
            )
            evaluation = SharedWeightEvaluation(evaluator, reward_fn, cache_path)
        else:
            if given:
                raise ValueError(
                    f"{sorted(given)} only apply with weight_sharing=True "
                    f"(got weight_sharing={weight_sharing!r})"
                )
            if fidelity == ZERO_COST_FIDELITY:
                evaluation = zero_cost_evaluation(
                    "cnn", zero_cost, data_dir, device, download, cache_path, backend, backend_kwargs
                )
            else:
                check_zero_cost_unused(zero_cost)
                trainer = CifarTrainingEvaluator(
                    fidelity, data_dir=data_dir, device=device, download=download
                )
                evaluation = Evaluation(trainer, reward_fn, cache_path, backend, backend_kwargs)
        self.weight_sharing = weight_sharing
        """Whether children are scored with shared weights (ENAS)."""
        super().__init__(space, evaluation, strict_actions, render_mode)

    def fidelity_kwargs(self, fidelity: str) -> dict[str, Any]:
        """Score children at another ``fidelity`` (successive halving).

        A zero-cost first rung's ``zero_cost=`` does not carry over to the trained rungs.
        """
        return {"fidelity": fidelity, "zero_cost": None}
