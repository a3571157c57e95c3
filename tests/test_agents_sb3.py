"""Stable-Baselines3 agents behind the SearchAgent interface (agents/sb3.py)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from synthetic import make_synthetic_env

from agents import make_agent
from nas_env.errors import DependencyNotInstalled, InvalidActionError

FAST = {
    "ppo": {"n_steps": 64, "batch_size": 32, "n_epochs": 2},
    "a2c": {},
    "dqn": {"learning_starts": 50, "buffer_size": 1000},
    "maskable_ppo": {"n_steps": 64, "batch_size": 32, "n_epochs": 2},
}


class MaskChecker(gym.Wrapper):
    """Records, for every step, whether the action was allowed by the env's mask at that step."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.allowed: list[bool] = []

    def step(self, action):
        self.allowed.append(bool(self.env.unwrapped.action_masks()[int(action)]))
        return self.env.step(action)


@pytest.mark.parametrize("name", sorted(FAST))
def test_sb3_agent_runs_a_few_hundred_steps(name: str) -> None:
    env = MaskChecker(make_synthetic_env())
    agent = make_agent(name, env, seed=0, **FAST[name])
    history = agent.search(25)  # 25 architectures of 12 tokens: 300 env steps
    assert [e.index for e in history] == list(range(25))
    assert agent.model.num_timesteps == 300 == len(env.allowed)
    for e in history:  # the recorded reward is the env's own (a Python float, not SB3's float32 copy)
        assert e.reward == e.info["val_accuracy"] and "reward" not in e.info
    if name == "maskable_ppo":
        assert all(env.allowed)
    else:  # agents without masks do pick masked actions (the env wraps them), so the check can fail
        assert not all(env.allowed)


def test_maskable_ppo_never_picks_a_masked_action_in_strict_mode() -> None:
    history = make_agent(
        "maskable_ppo", make_synthetic_env(strict_actions=True), seed=1, **FAST["ppo"]
    ).search(30)
    assert len(history) == 30
    with pytest.raises(InvalidActionError, match="is masked"):  # while plain PPO does
        make_agent("ppo", make_synthetic_env(strict_actions=True), seed=1, **FAST["ppo"]).search(30)


def test_sb3_settings_are_checked() -> None:
    with pytest.raises(ValueError, match=re.escape("unknown setting 'n_step' for agent 'ppo'")) as info:
        make_agent("ppo", make_synthetic_env(), n_step=8)
    assert "Did you mean 'n_steps'?" in str(info.value)
    for setting, package in [("tensorboard_log", "tensorboard"), ("progress_bar", "rich")]:
        if importlib.util.find_spec(package) is None:
            with pytest.raises(DependencyNotInstalled, match=f"pip install {package}"):
                make_agent(
                    "ppo", make_synthetic_env(), **{setting: "/tmp/tb" if package == "tensorboard" else True}
                )
    with pytest.raises(ValueError, match="needs a single env"):
        make_agent("a2c", gym.vector.SyncVectorEnv([make_synthetic_env]))


def test_sb3_resumes_from_the_saved_model(tmp_path: Path) -> None:
    first = make_agent("ppo", make_synthetic_env(), seed=0, **FAST["ppo"])
    first.search(10)
    first.save(tmp_path / "ck.pt")
    assert (tmp_path / "ck.zip").is_file()
    second = make_agent("ppo", make_synthetic_env(), seed=0, **FAST["ppo"])
    second.load(tmp_path / "ck.pt")
    assert second.model.num_timesteps == first.model.num_timesteps
    params = [p.detach().clone() for p in first.model.policy.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(params, second.model.policy.parameters(), strict=True))
    history = second.search(20)
    assert [e.arch for e in history[:10]] == [e.arch for e in first.history] and len(history) == 20


@pytest.mark.slow
def test_maskable_ppo_on_cifar_smoke(data_dir: Path) -> None:
    """MaskablePPO against the real NAS-CIFAR10-v0 (2 layers, smoke fidelity: tiny real trainings)."""
    env = MaskChecker(
        gym.make("NAS-CIFAR10-v0", num_layers=2, max_layers=2, fidelity="smoke", data_dir=str(data_dir))
    )
    history = make_agent("maskable_ppo", env, seed=0, n_steps=32, batch_size=16, n_epochs=1).search(8)
    assert len(history) == 8 and len(env.allowed) == 8 * 7 and all(env.allowed)
    assert all(0 <= e.info["val_accuracy"] <= 1 and e.info["eval_status"] == "ok" for e in history)
