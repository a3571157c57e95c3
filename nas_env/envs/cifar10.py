"""NAS-CIFAR10-v0: the paper's CNN search space, children trained on CIFAR-10."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from nas_env.envs.token_env import TokenNASEnv
from nas_env.evaluators.training import CifarTrainingEvaluator
from nas_env.rewards import get_reward
from nas_env.search_spaces.cnn import CnnSearchSpace
from nas_env.training.recipes import Fidelity


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

    ## Arguments

    | name             | type              | default   | meaning                                        |
    |------------------|-------------------|-----------|------------------------------------------------|
    | num_layers       | int               | 6         | depth; change per episode with reset options   |
    | max_layers       | int               | 15        | largest depth (fixes the observation size)     |
    | predict_stride   | bool              | False     | add a stride token per layer                   |
    | skip_connections | bool              | True      | anchor tokens choose inputs (else a chain)     |
    | pool_after       | tuple[int, ...]   | ()        | 2x2 max-pool after these layers (0-based)      |
    | filter_offset    | int               | 0         | added to every layer's filters ("+40 filters") |
    | fidelity         | str or Fidelity   | "proxy"   | "paper", "proxy", "smoke" or a Fidelity        |
    | reward           | str               | "paper"   | "paper" (accuracy cubed) or "accuracy"         |
    | cache_path       | str or None       | None      | SQLite results store (None: in memory)         |
    | data_dir         | str or None       | None      | CIFAR-10 root (default ``$NAS_ENV_DATA``)      |
    | device           | str               | "auto"    | where children train                           |
    | download         | bool              | True      | download CIFAR-10 (md5-checked) when absent    |
    | strict_actions   | bool              | False     | raise on masked actions instead of wrapping    |
    | render_mode      | str or None       | None      | "ansi" renders the tokens / architecture       |
    | backend          | str               | "local"   | where children train: "local", "pool", "ray"   |
    | backend_kwargs   | dict or None      | None      | backend arguments (see nas_env.backends)       |

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

    * v0: Initial version.
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
    ) -> None:
        """Build the space, evaluator and reward from flat keyword arguments (see the table)."""
        space = CnnSearchSpace(
            num_layers=num_layers,
            max_layers=max_layers,
            predict_stride=predict_stride,
            skip_connections=skip_connections,
            pool_after=tuple(pool_after),
            filter_offset=filter_offset,
        )
        evaluator = CifarTrainingEvaluator(fidelity, data_dir=data_dir, device=device, download=download)
        super().__init__(
            space,
            evaluator,
            get_reward(reward),
            cache_path=cache_path,
            strict_actions=strict_actions,
            render_mode=render_mode,
            backend=backend,
            backend_kwargs=backend_kwargs,
        )
