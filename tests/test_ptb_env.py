"""NAS-PTB-v0 and NAS-PTBChar-v0: the env contract, on real Penn Treebank at smoke fidelity."""

from __future__ import annotations

import math
import pickle
import re
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from test_ptb_data import write_char_ptb

import nas_env  # noqa: F401 - registers the envs
from nas_env.errors import DatasetError, InvalidActionError
from nas_env.search_spaces.rnn_cell import NASCELL
from nas_env.training.ptb import PTB_FIDELITIES

TERMINAL_KEYS = {
    "arch", "cached", "eval_status", "error", "num_params", "train_seconds", "cost_s", "seed",
    "val_perplexity", "train_loss", "action_mask",
}  # fmt: skip
PAPER_BASE2_ACTIONS = [0, 1, 1, 3, 1, 2, 0, 0, 3, 1]
"""Figure 5 of the paper: add:tanh mul:relu / mul:sigmoid ; c_in 0 add:relu ; c_out 1."""
DIVERGING = PTB_FIDELITIES["smoke"].replace(optimizer="sgd", lr=1e12, grad_clip=1e30, init_scale=2.0)
"""A recipe whose children blow up at once (huge learning rate, no effective clipping)."""


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Smoke children and tiny cells are faster on one thread (no OpenMP barriers on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_episode(env: gym.Env, actions: list[int]) -> tuple[float, dict]:
    terminated, reward, info = False, 0.0, {}
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        assert not truncated
        if terminated:
            break
    assert terminated
    return float(reward), info


@pytest.fixture(scope="module")
def ptb_root() -> Path:
    import os

    root = Path(os.environ["NAS_ENV_DATA"])
    assert (root / "ptb" / "ptb.train.txt").is_file(), f"Penn Treebank not found under {root}/ptb"
    return root


@pytest.mark.parametrize("kwargs", [{}, {"base": 2}, {"base": 4, "memory": False}])
def test_env_passes_both_checkers(kwargs: dict) -> None:
    env = gym.make("NAS-PTB-v0", fidelity="smoke", **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zero unexpected warnings
        gym_check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(env.unwrapped)
    if not kwargs:
        assert env.observation_space.shape == (34 * 15 + 2 * 34 + 1,) and env.action_space.n == 15


def test_full_episode_trains_a_real_child(ptb_root: Path, tmp_path: Path) -> None:
    env = gym.make("NAS-PTB-v0", base=2, fidelity="smoke", cache_path=str(tmp_path / "r.sqlite"))
    obs, info = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape and info["action_mask"].tolist() == [
        True,
        True,
        False,
        False,
    ]
    reward, info = run_episode(env, PAPER_BASE2_ACTIONS)
    assert set(info) == TERMINAL_KEYS
    assert info["arch"] == "add:tanh mul:relu / mul:sigmoid ; c_in 0 add:relu ; c_out 1"
    assert info["eval_status"] == "ok" and not info["cached"] and info["error"] == ""
    assert 1 < info["val_perplexity"] < 1e5 and math.isfinite(info["train_loss"])
    assert reward == pytest.approx(80 / info["val_perplexity"] ** 2)
    assert info["num_params"] > 10_000 * 32 and info["train_seconds"] > 0

    # Same cell again: answered from the results store, same reward.
    env.reset()
    reward2, info2 = run_episode(env, PAPER_BASE2_ACTIONS)
    assert info2["cached"] and reward2 == reward and set(info2) == TERMINAL_KEYS

    # Same seed in a fresh env (own store): the child trains to the same perplexity.
    other = gym.make("NAS-PTB-v0", base=2, fidelity="smoke", reward_c=1.0)
    other.reset(seed=0)
    reward3, info3 = run_episode(other, PAPER_BASE2_ACTIONS)
    assert not info3["cached"] and info3["val_perplexity"] == info["val_perplexity"]
    assert reward3 == pytest.approx(1.0 / info["val_perplexity"] ** 2)  # c is configurable


def test_published_cell_trains_at_smoke_fidelity(ptb_root: Path) -> None:
    env = gym.make("NAS-PTB-v0", fidelity="smoke").unwrapped
    env.reset(seed=3)
    reward, info = env.evaluate_arch(NASCELL)
    assert info["eval_status"] == "ok" and reward == pytest.approx(80 / info["val_perplexity"] ** 2)
    assert info["arch"] == NASCELL.to_str()


def test_diverging_child_gets_zero_reward_and_the_error(ptb_root: Path) -> None:
    env = gym.make("NAS-PTB-v0", base=2, fidelity=DIVERGING)
    env.reset(seed=0)
    reward, info = run_episode(env, [1, 0] * 3 + [2, 1, 0, 2])  # all mul:identity: products explode
    assert reward == 0.0 and info["eval_status"] == "failed"
    assert "FloatingPointError" in info["error"] and "diverged" in info["error"]
    assert math.isnan(info["val_perplexity"]) and set(info) == TERMINAL_KEYS


def test_same_seed_same_observations_and_pickles() -> None:
    env = gym.make("NAS-PTB-v0", fidelity="smoke")
    obs1, _ = env.reset(seed=7)
    restored = pickle.loads(pickle.dumps(env.unwrapped))
    obs2, _ = restored.reset(seed=7)
    assert np.array_equal(obs1, obs2)
    for action in [1, 3, 0, 2]:
        a, *_ = env.step(action)
        b, *_ = restored.step(action)
        assert np.array_equal(a, b)


def test_masked_actions_wrap_or_raise() -> None:
    env = gym.make("NAS-PTB-v0", base=2, fidelity="smoke")
    env.reset(seed=0)
    env.step(3)  # combination has 2 choices: 3 wraps to 3 % 2 = 1 (mul)
    assert env.unwrapped._tokens == [1]
    strict = gym.make("NAS-PTB-v0", base=2, fidelity="smoke", strict_actions=True)
    strict.reset(seed=0)
    with pytest.raises(InvalidActionError, match=re.escape("action 3 is masked at step 0 (combination)")):
        strict.step(3)
    with pytest.raises(InvalidActionError, match="outside the action space Discrete"):
        strict.step(4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base": 3}, "base=3 is not allowed; expected one of [2, 4, 8]"),
        ({"base": 16}, "base=16 is not allowed; expected one of [2, 4, 8]"),
        ({"fidelity": "fast"}, "fidelity='fast' is not allowed; expected one of ['paper', 'proxy', 'smoke']"),
        ({"fidelity": "prxy"}, "Did you mean 'proxy'?"),
        ({"reward_c": 0}, "reward_c=0 must be a positive finite number"),
        ({"reward_c": "80"}, "reward_c='80' must be a positive finite number"),
        ({"memory": 1}, "memory=1 must be True or False"),
        ({"render_mode": "human"}, "render_mode='human' is not allowed; expected one of ['ansi']"),
    ],
)
def test_bad_kwargs(kwargs: dict, message: str) -> None:
    with warnings.catch_warnings(), pytest.raises(ValueError, match=re.escape(message)):
        warnings.simplefilter("ignore")  # gym.make's own warning about render_mode="human"
        gym.make("NAS-PTB-v0", **kwargs)


def test_bad_fidelity_fields() -> None:
    with pytest.raises(ValueError, match=re.escape("PtbFidelity.hidden_size=0 must be a positive integer")):
        PTB_FIDELITIES["smoke"].replace(hidden_size=0)
    with pytest.raises(ValueError, match=re.escape("PtbFidelity.optimizer='rmsprop' is not allowed")):
        PTB_FIDELITIES["smoke"].replace(optimizer="rmsprop")
    with pytest.raises(ValueError, match=re.escape("PtbFidelity.train_tokens=1 must be None (all)")):
        PTB_FIDELITIES["smoke"].replace(train_tokens=1)


def test_render_ansi() -> None:
    env = gym.make("NAS-PTB-v0", base=2, fidelity="smoke", render_mode="ansi")
    env.reset(seed=0)
    env.step(0)
    env.step(1)
    assert env.render() == "combination=add activation=tanh"


def test_char_env_needs_its_data(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="Penn Treebank \\(char level\\) not found"):
        gym.make("NAS-PTBChar-v0", data_dir=str(tmp_path))


def test_char_env_episode_on_synthetic_char_data(tmp_path: Path) -> None:
    write_char_ptb(tmp_path)
    env = gym.make("NAS-PTBChar-v0", base=2, fidelity="smoke", data_dir=str(tmp_path))
    env.reset(seed=0)
    reward, info = run_episode(env, PAPER_BASE2_ACTIONS)
    assert set(info) == TERMINAL_KEYS | {"val_bpc"} and info["eval_status"] == "ok"
    assert info["val_bpc"] == pytest.approx(math.log2(info["val_perplexity"]))
    assert info["val_perplexity"] < 11 and reward == pytest.approx(80 / info["val_perplexity"] ** 2)


def test_docstring_examples_run() -> None:
    import doctest

    import nas_env.envs.ptb
    import nas_env.search_spaces.rnn_cell

    for module in (nas_env.envs.ptb, nas_env.search_spaces.rnn_cell):
        assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0
