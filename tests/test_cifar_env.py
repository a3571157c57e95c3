"""NAS-CIFAR10-v0: the env contract, on real CIFAR-10 at smoke fidelity."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import nas_env  # noqa: F401 - registers the envs
from nas_env.errors import InvalidActionError
from nas_env.training.recipes import Fidelity

SMALL = {"num_layers": 2, "max_layers": 3, "fidelity": "smoke"}
TERMINAL_KEYS = {
    "arch",
    "cached",
    "eval_status",
    "error",
    "num_params",
    "train_seconds",
    "cost_s",
    "seed",
    "val_accuracy",
    "final_val_accuracy",
    "train_loss",
    "action_mask",
}


def run_episode(env: gym.Env, actions: list[int]) -> tuple[list[np.ndarray], float, dict]:
    observations, reward, info = [], 0.0, {}
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        assert not truncated
        if terminated:
            break
    assert terminated
    return observations, float(reward), info


def masked_actions(env: gym.Env, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int(rng.integers(s.num_choices)) for s in env.unwrapped.token_schedule()]


def test_default_env_passes_both_checkers(data_dir: Path) -> None:
    env = gym.make("NAS-CIFAR10-v0", fidelity="smoke")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zero unexpected warnings
        gym_check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(env.unwrapped)
    assert env.unwrapped.observation_space.shape == (150 * 4 + 2 * 150 + 1,)


@pytest.mark.slow
def test_full_episode_trains_a_real_child(data_dir: Path, tmp_path: Path) -> None:
    env = gym.make("NAS-CIFAR10-v0", **SMALL, cache_path=str(tmp_path / "r.sqlite"))
    obs, info = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape and info["action_mask"].dtype == bool
    actions = masked_actions(env, 0)
    assert len(actions) == 2 * 3 + 1
    _, reward, info = run_episode(env, actions)
    assert set(info) == TERMINAL_KEYS
    assert info["eval_status"] == "ok" and not info["cached"]
    assert 0.0 <= info["val_accuracy"] <= 1.0
    assert reward == pytest.approx(info["val_accuracy"] ** 3)
    assert info["num_params"] > 0 and info["train_seconds"] > 0
    assert info["arch"] == env.unwrapped.space.decode(actions).to_str()

    # Same architecture again: answered from the results store at once, same reward.
    env.reset()
    _, reward2, info2 = run_episode(env, actions)
    assert info2["cached"] and reward2 == reward and set(info2) == TERMINAL_KEYS
    assert len(env.unwrapped.evaluation.store) == 1

    # A new env on the same store file finds it too (shared across processes and runs).
    other = gym.make("NAS-CIFAR10-v0", **SMALL, cache_path=str(tmp_path / "r.sqlite"))
    other.reset(seed=5)
    assert run_episode(other, actions)[2]["cached"]


@pytest.mark.slow
def test_same_seed_same_observations_and_rewards(data_dir: Path) -> None:
    results = []
    for _ in range(2):
        env = gym.make("NAS-CIFAR10-v0", **SMALL, reward="accuracy")
        obs0, _ = env.reset(seed=42)
        env.action_space.seed(42)
        actions = [int(env.action_space.sample()) for _ in range(7)]  # masked actions included
        observations, reward, info = run_episode(env, actions)
        results.append((obs0, observations, reward, info["arch"], info["seed"]))
    (o_a, obs_a, r_a, arch_a, s_a), (o_b, obs_b, r_b, arch_b, s_b) = results
    assert np.array_equal(o_a, o_b) and all(np.array_equal(a, b) for a, b in zip(obs_a, obs_b, strict=True))
    assert (r_a, arch_a, s_a) == (r_b, arch_b, s_b)


def test_masked_actions_wrap_by_default_and_raise_when_strict(data_dir: Path) -> None:
    env = gym.make("NAS-CIFAR10-v0", **SMALL)
    env.reset(seed=0)
    for action in (3, 2, 1):  # layer 0: filter 7, filter 5, 36 filters
        env.step(action)
    env.step(2)
    env.step(3)
    env.step(0)
    # Anchor step (2 choices): action 3 wraps to 3 % 2 = 1, i.e. "layer 0 feeds layer 1".
    env.step(3)
    assert env.unwrapped.space.decode(env.unwrapped._tokens).to_str() == "7x5:36 | 5x7:24 <0"

    strict = gym.make("NAS-CIFAR10-v0", **SMALL, strict_actions=True)
    strict.reset(seed=0)
    for action in (0, 0, 0, 0, 0, 0):
        strict.step(action)
    with pytest.raises(InvalidActionError, match=re.escape("action 2 is masked at step 6 (anchor)")):
        strict.step(2)
    with pytest.raises(InvalidActionError, match="outside the action space Discrete"):
        strict.step(7)


def test_num_layers_changes_through_reset_options(data_dir: Path) -> None:
    env = gym.make("NAS-CIFAR10-v0", num_layers=2, max_layers=4, fidelity="smoke")
    obs, _ = env.reset(seed=0, options={"num_layers": 4})
    assert len(env.unwrapped.token_schedule()) == 4 * 3 + 6
    assert obs.shape == env.observation_space.shape
    with pytest.raises(
        ValueError, match=re.escape("num_layers=5 is out of range; expected an integer in [1, 4]")
    ):
        env.reset(options={"num_layers": 5})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"depth": 3})


@pytest.mark.slow
def test_failed_child_gets_zero_reward_and_env_keeps_working(data_dir: Path) -> None:
    exploding = Fidelity(epochs=1, train_images=128, valid_images=64, batch_size=64, lr=1e30, momentum=0.0)
    env = gym.make("NAS-CIFAR10-v0", num_layers=1, max_layers=1, fidelity=exploding)
    env.reset(seed=0)
    _, reward, info = run_episode(env, [1, 1, 3])
    assert reward == 0.0 and info["eval_status"] == "failed"
    assert "loss" in info["error"] and np.isnan(info["val_accuracy"])
    assert set(info) == TERMINAL_KEYS
    env.reset()
    assert run_episode(env, [0, 0, 0])[2]["eval_status"] in {"ok", "failed"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fidelity": "fast"}, "fidelity='fast' is not allowed; expected one of ['paper', 'proxy', 'smoke']"),
        ({"reward": "acc"}, "reward='acc' is not allowed; expected one of ['paper', 'accuracy']"),
        ({"num_layers": 20}, "num_layers=20 is out of range; expected an integer in [1, 15]"),
        ({"render_mode": "human"}, "render_mode='human' is not allowed; expected one of ['ansi']"),
    ],
)
@pytest.mark.filterwarnings("ignore:.*render_mode:UserWarning")
def test_bad_kwargs_raise_value_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        gym.make("NAS-CIFAR10-v0", **kwargs)


def test_unknown_kwarg_is_rejected() -> None:
    with pytest.raises(TypeError, match="num_layer"):
        gym.make("NAS-CIFAR10-v0", num_layer=6)


def test_ansi_render_shows_tokens(data_dir: Path) -> None:
    env = gym.make("NAS-CIFAR10-v0", **SMALL, render_mode="ansi")
    env.reset(seed=0)
    env.step(1)
    assert env.render() == "filter_height=3"
