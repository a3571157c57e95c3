"""NAS-CIFAR10-v0 with ``weight_sharing=True`` (ENAS): env contract, store, learning, resume, agents.

Everything runs on real CIFAR-10 with tiny settings (8x8 images, small minibatches) so that a child
costs milliseconds; the exactness of the supernet itself is tested in tests/test_supernet.py.
"""

from __future__ import annotations

import doctest
import json
import os
import re
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from search_runs import kill_search_midway, read_csv
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import nas_env  # noqa: F401 - registers the envs
from agents import make_agent
from nas_env.search_spaces.cnn import CnnArchitecture
from scripts import search

REPO = Path(__file__).resolve().parents[1]
TINY = {"batch_size": 16, "resolution": 8, "train_images": 2048, "valid_images": 512}
WS = {
    "num_layers": 2,
    "max_layers": 3,
    "weight_sharing": True,
    "shared_steps": 2,
    "valid_batch": 64,
    "shared_kwargs": TINY,
}


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: these tiny tensors gain nothing from two, and on a loaded machine OpenMP's
    waiting made each shared-weight step 25x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_env(**overrides) -> gym.Env:
    return gym.make("NAS-CIFAR10-v0", **{**WS, **overrides})


def episode(env: gym.Env, actions: list[int]) -> tuple[float, dict]:
    for action in actions:
        _, reward, terminated, _, info = env.step(action)
        if terminated:
            env.reset()
            return float(reward), info
    raise AssertionError("episode did not end")


def random_actions(env: gym.Env, n: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[int(rng.integers(s.num_choices)) for s in env.unwrapped.token_schedule()] for _ in range(n)]


def test_env_passes_both_checkers(data_dir: Path) -> None:
    env = make_env()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(env.unwrapped)


def test_scores_change_as_the_shared_weights_train_and_are_never_served_from_the_store(
    data_dir: Path,
) -> None:
    env = make_env(reward="accuracy")
    env.reset(seed=0)
    actions = [1, 1, 2, 3, 3, 1, 1]  # '3x3:48 | 7x7:36 <0'
    infos = [episode(env, actions)[1] for _ in range(5)]
    assert {i["arch"] for i in infos} == {"3x3:48 | 7x7:36 <0"}
    assert all(
        i["weight_sharing"] is True and i["cached"] is False and i["eval_status"] == "ok" for i in infos
    )
    assert [i["shared_step"] for i in infos] == [0, 2, 4, 6, 8]
    assert len({i["val_accuracy"] for i in infos}) > 1  # the same child, scored under other weights
    assert all(0 <= i["val_accuracy"] <= 1 and np.isfinite(i["train_loss"]) for i in infos)
    store = env.unwrapped.evaluation.store
    rows = store.rows(env.unwrapped.evaluation.evaluator.fingerprint)
    assert [r["arch"] for r in rows] == ["3x3:48 | 7x7:36 <0"] * 5  # every score recorded...
    assert [json.loads(r["metrics"])["shared_step"] for r in rows] == [0, 2, 4, 6, 8]  # ...with its moment


def test_same_seed_same_rewards_and_a_new_seed_does_not_reset_the_weights(data_dir: Path) -> None:
    runs = []
    for _ in range(2):
        env = make_env()
        env.reset(seed=3)
        runs.append([episode(env, a)[0] for a in random_actions(env, 6, seed=1)])
    assert runs[0] == runs[1]
    env.reset(seed=4)
    assert episode(env, random_actions(env, 1, seed=1)[0])[1]["shared_step"] == 12


def test_state_dict_resumes_exactly(data_dir: Path, tmp_path: Path) -> None:
    """Shared weights, optimizer and streams saved mid-run: the restored env scores the rest identically."""
    whole = make_env()
    whole.reset(seed=7)
    plan = random_actions(whole, 8, seed=2)
    head = [episode(whole, a) for a in plan[:4]]
    torch.save(whole.unwrapped.state_dict(), tmp_path / "ws.pt")
    tail = [episode(whole, a)[0] for a in plan[4:]]
    resumed = make_env()
    resumed.reset(seed=7)
    resumed.unwrapped.load_state_dict(torch.load(tmp_path / "ws.pt", weights_only=True))
    assert [episode(resumed, a)[0] for a in plan[4:]] == tail
    assert head[-1][1]["shared_step"] == 6
    with pytest.raises(ValueError, match="make the env with weight_sharing=True"):
        gym.make("NAS-CIFAR10-v0", num_layers=2, fidelity="smoke").unwrapped.load_state_dict(
            torch.load(tmp_path / "ws.pt", weights_only=True)
        )
    other = make_env(shared_steps=3)
    with pytest.raises(ValueError, match="resume with the same weight-sharing settings"):
        other.unwrapped.load_state_dict(torch.load(tmp_path / "ws.pt", weights_only=True))


def test_deeper_children_grow_the_supernet(data_dir: Path) -> None:
    env = make_env()
    env.reset(seed=0, options={"num_layers": 3})
    _, info = episode(env, random_actions(env, 1, seed=0)[0])
    assert info["eval_status"] == "ok" and info["arch"].count("|") == 2
    assert env.unwrapped.evaluation.evaluator.trainer.supernet.num_layers == 3


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        (
            {"weight_sharing": False},
            "['shared_kwargs', 'shared_steps', 'valid_batch'] only apply with weight_sharing=True",
        ),
        ({"shared_steps": -1}, "shared_steps=-1 must be an integer >= 0"),
        ({"valid_batch": 0}, "valid_batch=0 must be a positive integer"),
        ({"valid_batch": 1000}, "valid_batch=1000 exceeds valid_images=512"),
        ({"shared_kwargs": {**TINY, "lr": 0}}, "lr=0 (> 0)"),
        ({"shared_kwargs": {**TINY, "resolution": 12}}, "resolution=12"),
        ({"shared_kwargs": {**TINY, "batchsize": 8}}, "Did you mean 'batch_size'?"),
        ({"backend": "pool"}, "weight_sharing=True needs backend='local', got backend='pool'"),
    ],
)
def test_bad_arguments_name_the_value(kwargs: dict, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        make_env(**kwargs)


@pytest.mark.parametrize(
    ("agent", "settings"),
    [
        ("random", {}),
        ("reinforce", {"batch_size": 4}),
        ("evolution", {"population_size": 4, "tournament_size": 2}),
        ("ppo", {"n_steps": 16, "batch_size": 16}),
    ],
)
def test_agents_run_unchanged(agent: str, settings: dict, data_dir: Path) -> None:
    env = make_env()
    history = make_agent(agent, env, seed=0, **settings).search(8)
    assert len(history) == 8
    assert [e.info["shared_step"] for e in history] == list(range(0, 16, 2))
    assert all(e.info["weight_sharing"] and 0 <= e.reward <= 1 for e in history)


@pytest.mark.slow
def test_reinforce_learns_with_shared_weights(data_dir: Path) -> None:
    """The paper's controller on shared-weight rewards: the last 40 children score >= first 40 + 0.03.

    Part of the rise is the shared weights training (the random agent rises too); the margin
    asks that the whole loop (controller sampling, shared training, scoring) turns into rewards
    that climb, as the issue's 400-child target does at full size (benchmarks/bench_weight_sharing.py).
    """
    env = make_env(reward="accuracy", shared_steps=4)
    history = make_agent("reinforce", env, seed=0, learning_rate=0.005).search(200)
    rewards = [e.reward for e in history]
    assert np.mean(rewards[-40:]) >= np.mean(rewards[:40]) + 0.03


@pytest.mark.slow
def test_nas_search_resumes_after_sigkill_exactly(data_dir: Path, tmp_path: Path) -> None:
    """Kill ``nas-search`` mid-run; resumed from its checkpoint (shared weights in it), it repeats the run."""
    env_kwargs = [f"{k}={v!r}" for k, v in {**WS, "shared_kwargs": {**TINY, "resolution": 16}}.items()]
    argv = ["--agent", "reinforce", "--agent-kwargs", "batch_size=4", "--budget", "40", "--seed", "5",
            "--no-progress", "--env-kwargs", *env_kwargs]  # fmt: skip
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert search.main([*argv, "--out", str(reference)]) == 0
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}  # as this process: equal float sums, equal argmaxes
    assert 10 <= kill_search_midway([*argv, "--out", str(killed)], killed, 10, env=one_thread) < 40
    state = torch.load(killed / "checkpoint.pt", weights_only=True)
    assert state["env_state"]["trainer"]["step"] > 0  # the shared weights travel in the checkpoint
    assert search.main(["--out", str(killed), "--resume"]) == 0
    key = [(r["index"], r["arch"], r["reward"], r["shared_step"]) for r in read_csv(reference)]
    assert [(r["index"], r["arch"], r["reward"], r["shared_step"]) for r in read_csv(killed)] == key


def test_rank_rescoring_is_deterministic(data_dir: Path) -> None:
    env = make_env()
    env.reset(seed=0)
    for actions in random_actions(env, 4, seed=0):
        episode(env, actions)
    archs = [CnnArchitecture.from_str(a) for a in ("1x1:24 | 3x3:64 <0", "7x7:64 | 5x5:24")]
    scores = env.unwrapped.evaluation.evaluator.rank(archs, images=256)
    assert scores == env.unwrapped.evaluation.evaluator.rank(archs, images=256) and all(
        0 <= s <= 1 for s in scores
    )


def test_docs_example_runs(data_dir: Path) -> None:
    result = doctest.testfile(str(REPO / "docs" / "weight_sharing.md"), module_relative=False)
    assert result.attempted > 0 and result.failed == 0
