"""NAS-Bench-201-v0: NB201's cell space, rewards looked up in a table or from real training."""

from __future__ import annotations

import os
from typing import Any

from nas_env.envs.token_env import TokenNASEnv
from nas_env.evaluation import Evaluation, SharedWeightEvaluation, zero_cost_evaluation
from nas_env.evaluators.base import Evaluator
from nas_env.evaluators.nb201_training import NB201TrainingEvaluator
from nas_env.evaluators.tabular import (
    DEFAULT_REPORT_METRIC,
    DEFAULT_REWARD_METRIC,
    TabularEvaluator,
    find_nb201_table,
)
from nas_env.evaluators.weight_sharing import NB201SharedWeightEvaluator
from nas_env.evaluators.zero_cost import ZERO_COST_FIDELITY, check_zero_cost_unused
from nas_env.rewards import get_reward
from nas_env.search_spaces.nb201 import NB201SearchSpace
from nas_env.training.nb201_weight_sharing import NB201SharedRecipe
from nas_env.training.recipes import NB201_FIDELITIES, Fidelity

AUTO_TABLE = "auto"
"""``table_path`` default: the table found under the data roots (see :func:`find_nb201_table`)."""
_TRAINED_ONLY = {"fidelity": None, "data_dir": None, "test_images": None}
_TABULAR_ONLY = {"reward_metric": DEFAULT_REWARD_METRIC, "report_metric": DEFAULT_REPORT_METRIC}


class NASBench201Env(TokenNASEnv):
    """Pick the operation of each of the 6 edges of a NAS-Bench-201 cell.

    Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture
    Search", ICLR 2020 (https://arxiv.org/abs/2001.00326). Spaces and episode rules are those of
    :class:`~nas_env.envs.token_env.TokenNASEnv`.

    ## Description

    A cell is a DAG of 4 nodes; each edge ``j -> i`` (``j < i``) carries one of ``none``,
    ``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3``, ``avg_pool_3x3``: 15,625 cells. The cell is
    stacked into NB201's network (3 stages of 5 cells, 16/32/64 channels). Two modes:

    - **tabular** (the default): the reward is looked up in a CSV table in NB201's schema
      (see :mod:`nas_env.evaluators.tabular`) in microseconds, so that whole searches take
      seconds and compare with published numbers. ``table_path="auto"`` (the default) finds
      ``nb201/nb201.csv`` or ``nb201/nb201_cifar10.csv`` under ``data_dir``, ``$NAS_ENV_DATA`` or
      ``~/.cache/nas_env/data`` (``DatasetError`` naming the paths tried when there is none;
      ``nas-bench-table`` builds one from NATS-Bench's files); ``table_path=PATH`` names a table;
    - **trained** (``table_path=None``, or ``fidelity=``/``test_images=`` given with the default
      ``table_path``): the network is trained on CIFAR-10 with the package's trainer at a
      fidelity preset, through the same results store and cache;
    - **weight sharing** (``weight_sharing=True``): one supernet over every cell
      (:mod:`nas_env.builders.nb201_supernet`) scores each child with its shared weights, then
      trains them ``shared_steps`` steps on it (ENAS's alternation; ``shared_steps=0`` after a
      ``warmup_steps`` of uniformly random cells is a one-shot search of an RSPS supernet).
      Scores are logged to the store, never cached; ``docs/weight_sharing.md``.

    ## Action Space

    ``Discrete(5)``: the operation of the current edge, in the order above. Edges come in NB201's
    order ``0->1, 0->2, 1->2, 0->3, 1->3, 2->3``. Every action is valid at every step, so
    ``action_masks()`` is all True.

    ## Observation Space

    ``Box(0, 1, (43,), float32)``: one-hot of each operation chosen so far (6 x 5), one-hot of the
    current edge (6, none after the last), one-hot of the episode length (7, always 6).

    ## Rewards

    0 until the last edge, then ``reward="accuracy"`` (default): the search accuracy in [0, 1]:
    the table's ``reward_metric`` column / 100 (tabular) or the validation accuracy after training
    (trained); ``reward="paper"``: that accuracy cubed. ``info["test_accuracy"]`` carries the
    ``report_metric`` column / 100 (tabular) or the CIFAR-10 test accuracy (trained); it is never
    part of the reward.

    ## Starting State

    No edge chosen.

    ## Episode End

    Terminates after the 6th edge; never truncates.

    ## Info

    Terminal step: ``arch`` (NB201's string), ``cached``, ``eval_status``, ``error``,
    ``num_params`` (0 in tabular mode), ``train_seconds`` and ``cost_s`` (tabular: the table's
    simulated training seconds for the reward metric when it has them, else 0), ``seed``,
    ``val_accuracy``, ``test_accuracy`` and in trained mode ``final_val_accuracy``, ``train_loss``.

    ## Arguments

    Its own, besides the common ones of :class:`~nas_env.envs.token_env.TokenNASEnv`
    (``data_dir``: the CIFAR-10 root in trained mode, or the first root of the ``"auto"`` table
    lookup; ``device``, ``download`` and ``backend`` concern trained mode):

    | name           | type            | default                  | meaning                                  |
    |----------------|-----------------|--------------------------|------------------------------------------|
    | table_path     | str or None     | "auto"                   | CSV table; "auto": found under the data  |
    |                |                 |                          | roots; None: trained                     |
    | reward_metric  | str             | "cifar10_valid_acc_12ep" | tabular: column scoring the search       |
    | report_metric  | str             | "cifar10_test_acc_200ep" | tabular: column in info["test_accuracy"] |
    | reward         | str             | "accuracy"               | "accuracy" or "paper" (accuracy cubed)   |
    | fidelity       | str, Fidelity   | None                     | trained: "paper", "proxy" (None),        |
    |                | or None         |                          | "deep", "smoke"...; "zero_cost":         |
    |                |                 |                          | untrained score                          |
    | zero_cost      | str or None     | None                     | with fidelity="zero_cost": the score     |
    |                |                 |                          | ("ensemble"; docs/zero_cost.md)          |
    | test_images    | int or None     | None                     | trained: test images scored (None:       |
    |                |                 |                          | the fidelity's valid_images)             |
    | weight_sharing | bool            | False                    | score with a shared-weight supernet      |
    | shared_steps   | int or None     | None (2)                 | weight sharing: steps per child          |
    | valid_batch    | int or None     | None (128)               | weight sharing: images per score         |
    | shared_kwargs  | dict or None    | None                     | other ``NB201SharedRecipe`` fields       |

    Setting an argument of the other mode to a non-default value raises ``ValueError``.

    ## Example

    >>> import gymnasium as gym, nas_env
    >>> env = gym.make("NAS-Bench-201-v0", table_path=None, fidelity="smoke")  # trained mode
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape, info["action_mask"].tolist()
    ((43,), [True, True, True, True, True])
    >>> for action in [1, 4, 1, 1, 0, 1]:
    ...     obs, reward, terminated, truncated, info = env.step(action)
    >>> terminated, info["arch"]
    (True, '|skip_connect~0|+|avg_pool_3x3~0|skip_connect~1|+|skip_connect~0|none~1|skip_connect~2|')
    >>> reward == info["val_accuracy"], 0 <= info["test_accuracy"] <= 1
    (True, True)

    ## Version History

    * v0: Initial version. ``table_path`` later defaulted to ``"auto"`` (the table found under the
      data roots) instead of trained mode; spaces, rewards and dynamics are unchanged. Trained
      mode's ``proxy`` now trains a reduced network (1 cell per stage) at 10k x 6 epochs, which
      ranks cells far better against the table (docs/fidelity.md); cached rewards are re-keyed.
      ``weight_sharing`` added later (off by default: nothing else changed), then the ``deep``
      trained preset (``proxy``'s recipe on 8 channels and 3 cells per stage; nothing else changed).
    """

    def __init__(
        self,
        table_path: str | os.PathLike[str] | None = AUTO_TABLE,
        reward_metric: str = DEFAULT_REWARD_METRIC,
        report_metric: str = DEFAULT_REPORT_METRIC,
        reward: str = "accuracy",
        fidelity: str | Fidelity | None = None,
        test_images: int | None = None,
        cache_path: str | os.PathLike[str] | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        device: str = "auto",
        download: bool = True,
        strict_actions: bool = False,
        render_mode: str | None = None,
        backend: str = "local",
        backend_kwargs: dict[str, Any] | None = None,
        zero_cost: str | None = None,
        weight_sharing: bool = False,
        shared_steps: int | None = None,
        valid_batch: int | None = None,
        shared_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Build the space, the evaluator of the chosen mode and the reward (see the table).

        Raises:
            ValueError: A bad argument, or an argument of the other mode set.
            DatasetError: No table found (``table_path="auto"``), or the table is invalid.
        """
        evaluation: Evaluation
        shared = {"shared_steps": shared_steps, "valid_batch": valid_batch, "shared_kwargs": shared_kwargs}
        shared = {k: v for k, v in shared.items() if v is not None}
        if weight_sharing:
            if table_path not in (None, AUTO_TABLE) or fidelity is not None or test_images is not None:
                raise ValueError(
                    f"weight_sharing=True scores cells with a supernet; table_path={table_path!r}, "
                    f"fidelity={fidelity!r} and test_images={test_images!r} do not apply (leave them unset)"
                )
            if backend != "local":
                raise ValueError(
                    f"weight_sharing=True needs backend='local', got backend={backend!r}: the shared "
                    "weights live in this process"
                )
            check_zero_cost_unused(zero_cost)
            settings = {k: v for k, v in shared.items() if k != "shared_kwargs"}
            recipe = NB201SharedRecipe.from_kwargs(**(dict(shared_kwargs or {}) | settings))
            self._tabular = self._zero_cost = False
            shared_evaluator = NB201SharedWeightEvaluator(recipe, data_dir, device, download)
            evaluation = SharedWeightEvaluation(shared_evaluator, get_reward(reward), cache_path)
            self.weight_sharing = True
            super().__init__(NB201SearchSpace(), evaluation, strict_actions, render_mode)
            return
        if shared:
            raise ValueError(
                f"{sorted(shared)} only apply with weight_sharing=True (got weight_sharing=False)"
            )
        if isinstance(table_path, str) and table_path == AUTO_TABLE:
            trained = fidelity is not None or test_images is not None
            table_path = None if trained else find_nb201_table(data_dir)
            data_dir = data_dir if trained else None  # used up by the lookup
        given = {
            "fidelity": fidelity,
            "data_dir": data_dir,
            "test_images": test_images,
            "reward_metric": reward_metric,
            "report_metric": report_metric,
        }
        other_mode = _TRAINED_ONLY if table_path is not None else _TABULAR_ONLY
        for name, default in other_mode.items():
            if given[name] != default:
                mode = "tabular mode (table_path=...)"
                if table_path is not None:
                    lookup = " or to find the default table (table_path='auto')" if name == "data_dir" else ""
                    mode = f"trained mode (table_path=None){lookup}"
                raise ValueError(f"{name}={given[name]!r} only applies in {mode}; remove it or switch mode")
        evaluator: Evaluator
        self._tabular = table_path is not None
        self._zero_cost = not self._tabular and fidelity == ZERO_COST_FIDELITY
        if self._zero_cost:
            if test_images is not None:
                raise ValueError(f"test_images={test_images!r} does not apply with fidelity='zero_cost'")
            evaluation = zero_cost_evaluation(
                "nb201", zero_cost, data_dir, device, download, cache_path, backend, backend_kwargs
            )
        else:
            check_zero_cost_unused(zero_cost)
            if table_path is not None:
                evaluator = TabularEvaluator(table_path, reward_metric, report_metric)
            else:
                evaluator = NB201TrainingEvaluator(
                    fidelity or "proxy",
                    data_dir=data_dir,
                    device=device,
                    download=download,
                    test_images=test_images,
                )
            evaluation = Evaluation(evaluator, get_reward(reward), cache_path, backend, backend_kwargs)
        self.weight_sharing = False
        """Whether children are scored with a shared-weight supernet."""
        super().__init__(NB201SearchSpace(), evaluation, strict_actions, render_mode)

    def fidelity_kwargs(self, fidelity: str) -> dict[str, Any]:
        """Constructor arguments that score children at another ``fidelity`` (successive halving).

        Tabular mode: ``fidelity`` is the table column that scores the children (``reward_metric``),
        e.g. ``"cifar10_valid_acc_200ep"``. Trained mode: a preset, as for the other envs.
        ``"zero_cost"`` scores them untrained; after a zero-cost first rung a table column is
        looked up in the default table.
        """
        if fidelity == ZERO_COST_FIDELITY:
            return {"table_path": None, "fidelity": fidelity}
        if self._tabular:
            return {"reward_metric": fidelity}
        if self._zero_cost and fidelity not in NB201_FIDELITIES:  # a table column after a zero-cost rung
            return {"table_path": AUTO_TABLE, "fidelity": None, "zero_cost": None, "reward_metric": fidelity}
        return {"fidelity": fidelity, "zero_cost": None}
