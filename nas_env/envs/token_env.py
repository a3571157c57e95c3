"""TokenNASEnv: one episode designs one architecture, token by token."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from nas_env.errors import InvalidActionError, check_choice
from nas_env.evaluation import Evaluation, Scored
from nas_env.evaluators.base import Evaluator
from nas_env.search_spaces.base import SearchSpace


class TokenNASEnv(gym.Env[np.ndarray, np.int64]):
    """A search space and an evaluator composed into a token-by-token Gymnasium env.

    ## Description

    Neural architecture search as a sequential decision problem (Zoph & Le, ICLR 2017): each
    step the agent emits one token of an architecture (a filter height, a number of filters, a
    skip connection...). When the last token is chosen the child network is evaluated (trained,
    or looked up) and its score is the reward. Concrete envs (``NAS-CIFAR10-v0``...) fix the
    search space and the evaluator.

    ## Action Space

    ``Discrete(max_vocab)``: action ``a`` picks choice ``a`` of the current step's token (see
    ``token_schedule()``). Steps have fewer choices than ``max_vocab`` (a skip connection is
    yes/no): ``action_masks()`` and ``info["action_mask"]`` say which actions are valid now. An
    in-space action that is masked is **wrapped**: it selects choice ``a % num_choices``, so agents
    that ignore masks (PPO, A2C, DQN) still train. With ``strict_actions=True`` it raises
    :class:`~nas_env.errors.InvalidActionError` instead. An action outside the space always raises.

    ## Observation Space

    ``Box(0, 1, (max_steps * max_vocab + 2 * max_steps + 1,), float32)``, fixed for every size up to
    the space's maximum:

    | part                    | size                   | meaning                                   |
    |-------------------------|------------------------|-------------------------------------------|
    | tokens so far           | max_steps * max_vocab  | one-hot of the choice made at each step   |
    | position                | max_steps              | one-hot of the current step (none at end) |
    | episode length          | max_steps + 1          | one-hot of this episode's number of steps |

    ## Rewards

    0 on every step but the last; the last gives the env's reward function of the evaluation
    (a failed child gets 0, with the error in ``info["error"]``).

    ## Starting State

    No tokens chosen. ``reset(options={"num_layers": n})`` changes the depth of spaces that have
    one (the paper grows it during search). The dataset the children need is looked for when the
    env is made (``download=False``) or at the first reset (downloaded then, with
    ``download=True``): a missing dataset raises ``DatasetError`` there, not at the last token.

    ## Episode End

    Terminates after the last token of the architecture; never truncates.

    ## Info

    Every step: ``action_mask``. Terminal step also: ``arch`` (canonical string), ``cached``,
    ``eval_status``, ``error``, ``num_params``, ``train_seconds`` (= ``cost_s``), ``seed`` and every
    metric the evaluator reports (``val_accuracy``...; NaN when the child failed).

    ## Common arguments

    Every env of this package takes these besides its own (its table lists only its own):

    | name           | type         | default | meaning                                           |
    |----------------|--------------|---------|---------------------------------------------------|
    | cache_path     | str or None  | None    | SQLite results store (None: in memory)            |
    | data_dir       | str or None  | None    | data root (default ``$NAS_ENV_DATA``)             |
    | device         | str          | "auto"  | where children train                              |
    | download       | bool         | True    | download missing data (md5-checked)               |
    | strict_actions | bool         | False   | raise on masked actions instead of wrapping       |
    | render_mode    | str or None  | None    | "ansi" renders the tokens / architecture          |
    | backend        | str          | "local" | where children train: "local", "pool", "ray"      |
    | backend_kwargs | dict or None | None    | the backend's arguments (see nas_env.backends)    |

    ``data_dir``, ``device`` and ``download`` go to the evaluator; ``cache_path``, ``backend`` and
    ``backend_kwargs`` to the :class:`~nas_env.evaluation.Evaluation` that scores children.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}  # noqa: RUF012 - gymnasium convention
    _data_checked = False
    """Whether the evaluator found its dataset (class default: envs pickled before it existed)."""

    def __init__(
        self,
        space: SearchSpace[Any],
        evaluation: Evaluation,
        strict_actions: bool = False,
        render_mode: str | None = None,
    ) -> None:
        """Compose a search space and the evaluation service that scores its architectures.

        Args:
            space: The search space (its maximum size fixes the spaces).
            evaluation: Scores complete architectures into rewards (store, backend, reward function).
            strict_actions: Raise on masked actions instead of wrapping them.
            render_mode: ``None`` or ``"ansi"``.
        """
        if render_mode is not None:
            check_choice("render_mode", render_mode, self.metadata["render_modes"])
        self.space = space
        self.evaluation = evaluation
        self.strict_actions = strict_actions
        self.render_mode = render_mode
        self._max_steps = space.max_steps
        self._vocab = space.max_vocab
        self.action_space = spaces.Discrete(self._vocab)
        self._obs_dim = self._max_steps * self._vocab + 2 * self._max_steps + 1
        self.observation_space = spaces.Box(0.0, 1.0, (self._obs_dim,), np.float32)
        self._tokens: list[int] = []
        self._root_seed: int | None = None
        if not getattr(evaluation.evaluator, "download", False):
            self._check_data()  # nothing may be downloaded: a missing dataset fails at make time

    @property
    def evaluator(self) -> Evaluator:
        """What scores this env's children (read-only: the evaluation service owns it)."""
        return self.evaluation.evaluator

    # ---- the token schedule, for agents -------------------------------------------------------

    def token_schedule(self) -> tuple[Any, ...]:
        """The ``TokenSpec`` of every step of the current episode (agents size their heads by it)."""
        return self.space.schedule()

    def action_masks(self) -> np.ndarray:
        """Valid actions at the current step (sb3-contrib's convention); all True after the end."""
        if len(self._tokens) >= len(self.space.schedule()):
            return np.ones(self._vocab, dtype=bool)
        return self.space.mask(len(self._tokens))

    def fidelity_kwargs(self, fidelity: str) -> dict[str, Any]:
        """Constructor arguments that make this env score children at another ``fidelity``.

        Successive halving (:mod:`agents.halving`) remakes the env from its spec with these to
        promote children; trained envs take a preset name as ``fidelity``.
        """
        return {"fidelity": fidelity}

    # ---- gymnasium API ------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new architecture. ``seed`` also fixes the children's training seeds.

        The first reset makes sure the dataset is there (downloading it when ``download=True``),
        so that a missing dataset fails here, not at the last token.
        """
        super().reset(seed=seed)
        self._check_data()
        if seed is not None or self._root_seed is None:
            self._root_seed = int(seed) if seed is not None else int(self.np_random.integers(2**31))
        options = dict(options or {})
        if "num_layers" in options:
            self.space = self.space.resized(options.pop("num_layers"))
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; allowed: ['num_layers']")
        self._tokens = []
        return self._observation(), {"action_mask": self.action_masks()}

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Append one token; on the last one, evaluate the architecture."""
        sched = self.space.schedule()
        if not self._tokens and self._root_seed is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if len(self._tokens) >= len(sched):
            raise gym.error.ResetNeeded("the episode has ended; call reset() before step()")
        if not self.action_space.contains(action):
            raise InvalidActionError(f"action {action!r} is outside the action space Discrete({self._vocab})")
        spec = sched[len(self._tokens)]
        token = int(action)
        if token >= spec.num_choices:
            if self.strict_actions:
                raise InvalidActionError(
                    f"action {token} is masked at step {len(self._tokens)} ({spec.kind}): valid actions "
                    f"are 0..{spec.num_choices - 1} for choices {list(spec.choices)}"
                )
            token %= spec.num_choices
        self._tokens.append(token)
        if len(self._tokens) < len(sched):
            return self._observation(), 0.0, False, False, {"action_mask": self.action_masks()}
        reward, info = self.evaluate_arch(self.space.decode(self._tokens))
        info["action_mask"] = self.action_masks()
        return self._observation(), reward, True, False, info

    def _check_data(self) -> None:
        """Have the evaluator find its dataset once (:meth:`Evaluator.check_data`)."""
        if not self._data_checked:
            self.evaluation.evaluator.check_data()
            self._data_checked = True

    def render(self) -> str | None:
        """``"ansi"``: the tokens chosen so far (and the architecture once complete)."""
        if self.render_mode != "ansi":
            return None
        if len(self._tokens) == len(self.space.schedule()):
            return self.space.decode(self._tokens).to_str()
        return " ".join(
            f"{s.kind}={s.choices[t]}" for t, s in zip(self._tokens, self.space.schedule(), strict=False)
        )

    def close(self) -> None:
        """Close the evaluation service (results store and backend)."""
        self.evaluation.close()

    # ---- evaluation: delegated to the service -------------------------------------------------

    def evaluate_arch(self, arch: Any) -> tuple[float, dict[str, Any]]:
        """Score a complete architecture as the last step does: the reward and the terminal ``info``.

        The ``info`` has no ``action_mask``.
        """
        return self.evaluation.evaluate(arch, self._root_seed or 0)

    def evaluate_archs(self, archs: Sequence[Any]) -> Iterator[Scored]:
        """Score several architectures as ``step`` would, yielding each as it completes.

        See :meth:`nas_env.evaluation.Evaluation.evaluate_many`; the children's seeds derive from
        the root seed of the last seeded ``reset``.

        Yields:
            ``(index in archs, reward, terminal info)``.
        """
        yield from self.evaluation.evaluate_many(archs, self._root_seed or 0)

    def state_dict(self) -> dict[str, Any]:
        """The evaluation's own state (the shared weights of weight sharing; else empty)."""
        return self.evaluation.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (nothing to do when it is empty).

        Raises:
            ValueError: Shared weights given to an env without weight sharing, or saved with
                other weight-sharing settings.
        """
        if state:
            self.evaluation.load_state_dict(state)

    def _observation(self) -> np.ndarray:
        obs = np.zeros(self._obs_dim, dtype=np.float32)
        n = len(self._tokens)
        if n:
            obs[np.arange(n) * self._vocab + np.asarray(self._tokens)] = 1.0
        offset = self._max_steps * self._vocab
        if n < len(self.space.schedule()):
            obs[offset + n] = 1.0
        obs[offset + self._max_steps + len(self.space.schedule())] = 1.0
        return obs
