"""NAS-Bench-201-v0: the env contract in tabular mode (synthetic table) and trained mode (real CIFAR-10)."""

from __future__ import annotations

import doctest
import importlib
import pickle
import re
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import nas_env  # noqa: F401 - registers the envs
from nas_env.errors import DatasetError
from nas_env.evaluators.nb201_synthetic import synthetic_columns, write_nb201_table
from nas_env.search_spaces.nb201 import NB201Architecture

TABULAR_KEYS = {
    "arch",
    "cached",
    "eval_status",
    "error",
    "num_params",
    "train_seconds",
    "cost_s",
    "seed",
    "val_accuracy",
    "test_accuracy",
    "action_mask",
}
TRAINED_KEYS = TABULAR_KEYS | {"final_val_accuracy", "train_loss"}


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_nb201_table(tmp_path_factory.mktemp("nb201") / "table.csv"))


def run_episode(env: gym.Env, actions: list[int]) -> tuple[list[np.ndarray], float, dict]:
    observations = []
    for step, action in enumerate(actions):
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        assert not truncated and terminated == (step == len(actions) - 1)
    return observations, float(reward), info


def percent(column: str, arch: NB201Architecture) -> float:
    return float(f"{synthetic_columns()[1][column][arch.index]:.4f}")


@pytest.mark.parametrize("mode", ["tabular", "trained"])
def test_env_passes_both_checkers(table: str, mode: str, data_dir: Path) -> None:
    kwargs = {"table_path": table} if mode == "tabular" else {"fidelity": "smoke"}
    env = gym.make("NAS-Bench-201-v0", **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zero unexpected warnings
        gym_check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(env.unwrapped)
    assert env.observation_space.shape == (43,) and env.action_space.n == 5


def test_tabular_episode_looks_the_cell_up(table: str) -> None:
    env = gym.make("NAS-Bench-201-v0", table_path=table)
    obs, info = env.reset(seed=0)
    assert obs.shape == (43,) and info["action_mask"].tolist() == [True] * 5
    actions = [3, 3, 4, 1, 3, 1]
    _, reward, info = run_episode(env, actions)
    arch = NB201Architecture.from_str(info["arch"])
    assert arch.tokens == actions
    assert set(info) == TABULAR_KEYS and info["eval_status"] == "ok" and not info["cached"]
    assert reward == pytest.approx(percent("cifar10_valid_acc_12ep", arch) / 100)
    assert info["val_accuracy"] == reward
    assert info["test_accuracy"] == pytest.approx(percent("cifar10_test_acc_200ep", arch) / 100)
    assert info["train_seconds"] == info["cost_s"] == percent("cifar10_train_seconds_12ep", arch)
    env.reset()
    _, reward2, info2 = run_episode(env, actions)
    assert info2["cached"] and reward2 == reward and set(info2) == TABULAR_KEYS


def test_report_metric_is_never_the_reward(table: str) -> None:
    env = gym.make(
        "NAS-Bench-201-v0",
        table_path=table,
        reward_metric="cifar100_valid_acc_200ep",
        report_metric="imagenet16_120_test_acc_200ep",
        reward="paper",
    )
    env.reset(seed=1)
    _, reward, info = run_episode(env, [2, 0, 3, 3, 1, 2])
    arch = NB201Architecture.from_str(info["arch"])
    assert reward == pytest.approx((percent("cifar100_valid_acc_200ep", arch) / 100) ** 3)
    assert info["test_accuracy"] == pytest.approx(percent("imagenet16_120_test_acc_200ep", arch) / 100)
    assert info["train_seconds"] == percent("cifar100_train_seconds_200ep", arch)


def test_same_seed_same_rollout_and_pickled_env_replays(table: str) -> None:
    def rollout(env: gym.Env) -> tuple:
        env.reset(seed=42)
        env.action_space.seed(42)
        out = []
        for _ in range(5):
            obs, reward, info = run_episode(env, [int(env.action_space.sample()) for _ in range(6)])
            out.append((np.stack(obs).tobytes(), reward, info["arch"], info["seed"]))
            env.reset()
        return tuple(out)

    first = rollout(gym.make("NAS-Bench-201-v0", table_path=table))
    assert rollout(gym.make("NAS-Bench-201-v0", table_path=table)) == first
    env = gym.make("NAS-Bench-201-v0", table_path=table)
    clone = pickle.loads(pickle.dumps(env))
    assert rollout(clone) == first


def test_ansi_render_and_shared_cache_file(table: str, tmp_path: Path) -> None:
    cache = str(tmp_path / "cache.sqlite")
    env = gym.make("NAS-Bench-201-v0", table_path=table, render_mode="ansi", cache_path=cache)
    env.reset(seed=0)
    env.step(3)
    assert env.render() == "op=nor_conv_3x3"
    for action in [0, 0, 1, 0, 2]:
        env.step(action)
    assert env.render() == "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
    other = gym.make("NAS-Bench-201-v0", table_path=table, cache_path=cache)
    other.reset(seed=3)
    assert run_episode(other, [3, 0, 0, 1, 0, 2])[2]["cached"]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"fidelity": "smoke"},
            ValueError,
            "fidelity='smoke' only applies in trained mode (table_path=None)",
        ),
        ({"test_images": 10}, ValueError, "test_images=10 only applies in trained mode"),
        (
            {"reward_metric": "cifar10_valid_acc"},
            ValueError,
            "reward_metric='cifar10_valid_acc' is not allowed",
        ),
        ({"reward": "acc"}, ValueError, "reward='acc' is not allowed; expected one of ['paper', 'accuracy']"),
        (
            {"render_mode": "human"},
            ValueError,
            "render_mode='human' is not allowed; expected one of ['ansi']",
        ),
    ],
)
@pytest.mark.filterwarnings("ignore:.*render_mode:UserWarning")
def test_bad_kwargs_raise(table: str, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        gym.make("NAS-Bench-201-v0", table_path=table, **kwargs)


@pytest.mark.parametrize("mode", [{"table_path": None}, {"fidelity": "smoke"}])
def test_tabular_only_kwargs_raise_in_trained_mode(mode: dict) -> None:
    message = "report_metric='cifar100_test_acc_200ep' only applies in tabular mode (table_path=...)"
    with pytest.raises(ValueError, match=re.escape(message)):
        gym.make("NAS-Bench-201-v0", report_metric="cifar100_test_acc_200ep", **mode)


def test_bad_table_fails_at_construction(tmp_path: Path) -> None:
    path = write_nb201_table(tmp_path / "short.csv", ["arch_str,cifar10_valid_acc_12ep"])
    with pytest.raises(DatasetError, match="has 0 of the 15625 cells"):
        gym.make("NAS-Bench-201-v0", table_path=str(path))


@pytest.mark.slow
def test_trained_mode_episode_on_real_cifar10(data_dir: Path, tmp_path: Path) -> None:
    cache = str(tmp_path / "r.sqlite")
    env = gym.make("NAS-Bench-201-v0", fidelity="smoke", cache_path=cache, device="cpu")
    env.reset(seed=0)
    actions = [2, 1, 4, 1, 0, 2]  # 1x1 convs, skips and a pooling: a cheap cell
    _, reward, info = run_episode(env, actions)
    assert set(info) == TRAINED_KEYS and info["eval_status"] == "ok" and not info["cached"]
    assert 0.0 <= info["val_accuracy"] <= 1.0 and reward == info["val_accuracy"]
    assert 0.0 <= info["test_accuracy"] <= 1.0 and np.isfinite(info["train_loss"])
    assert info["num_params"] > 0 and info["train_seconds"] > 0
    assert (
        info["arch"]
        == "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
    )
    env.reset()
    _, reward2, info2 = run_episode(env, actions)
    assert info2["cached"] and reward2 == reward


@pytest.mark.parametrize("name", ["nas_env.envs.nb201", "nas_env.search_spaces.nb201"])
def test_module_doctests(name: str, data_dir: Path) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
