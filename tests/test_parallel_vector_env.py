"""NAS-CIFAR10-v0 in worker processes: Gymnasium's AsyncVectorEnv and SB3's SubprocVecEnv.

Real children at smoke fidelity on real CIFAR-10 ($NAS_ENV_DATA). The workers share one SQLite
results store and divide the cores between them (one torch thread each on 2 cores).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from gymnasium.vector import AsyncVectorEnv

from nas_env.backends import threads_per_worker, vector_env_fns
from nas_env.envs.cifar10 import CifarNASEnv
from nas_env.store import ResultsStore

pytestmark = pytest.mark.slow
KWARGS = {"num_layers": 2, "max_layers": 2, "fidelity": "smoke", "download": False}
SEED = 3


def token_batches(env: CifarNASEnv, rounds: int, num_envs: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [np.array([env.space.sample(rng) for _ in range(num_envs)]) for _ in range(rounds)]


def run_vector(envs: AsyncVectorEnv, batches: list[np.ndarray]) -> tuple[list[float], list[dict]]:
    rewards, infos = [], []
    for tokens in batches:
        envs.reset(seed=[SEED] * envs.num_envs)  # one root seed: a child's seed depends on its arch only
        for step in range(tokens.shape[1]):
            _, reward, terminated, _, info = envs.step(tokens[:, step])
        assert terminated.all()
        rewards += [float(r) for r in reward]
        infos += [
            {k: info[k][i] for k in ("arch", "cached", "val_accuracy", "seed")} for i in range(envs.num_envs)
        ]
    return rewards, infos


def test_async_vector_env_matches_sequential_and_shares_one_store(tmp_path, data_dir):
    cache = str(tmp_path / "cache.db")
    probe = CifarNASEnv(**KWARGS, data_dir=str(data_dir))
    batches = token_batches(probe, rounds=3, num_envs=2)
    same = batches.pop()[:1]
    batches.append(batches[0][::-1].copy())  # the first round again, swapped between workers
    batches.append(np.concatenate([same, same]))  # one new architecture drawn by both workers at once
    threads = threads_per_worker(2)
    envs = AsyncVectorEnv(
        vector_env_fns(
            "NAS-CIFAR10-v0", 2, num_threads=threads, cache_path=cache, data_dir=str(data_dir), **KWARGS
        ),
        context="spawn",
    )
    try:
        rewards, infos = run_vector(envs, batches)
    finally:
        envs.close()
    # every architecture was trained once, by one of the workers, into the shared store; the one
    # both drew at once was trained by whichever claimed it first while the other waited for it
    rows = ResultsStore(cache).rows()
    assert len(rows) == 5 and len({r["arch"] for r in rows}) == 5
    assert [i["cached"] for i in infos[:6]] == [False] * 4 + [True] * 2
    assert sorted(i["cached"] for i in infos[6:]) == [False, True] and infos[6]["arch"] == infos[7]["arch"]
    assert rewards[4:6] == rewards[:2][::-1] and rewards[6] == rewards[7]

    # sequential evaluation of the same architectures and seeds, with the same threads per child
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        env = CifarNASEnv(**KWARGS, data_dir=str(data_dir))
        env.reset(seed=SEED)
        sequential = []
        for tokens in np.concatenate(batches[:2]):
            for token in tokens:
                _, reward, terminated, _, info = env.step(np.int64(token))
            assert terminated
            sequential.append((float(reward), info["arch"], info["seed"]))
            env.reset()
    finally:
        torch.set_num_threads(before)
    assert [(r, i["arch"], i["seed"]) for r, i in zip(rewards[:4], infos[:4], strict=True)] == sequential
    assert all(r > 0 for r in rewards)


def test_sb3_subproc_vec_env_steps_with_a_shared_store(tmp_path, data_dir):
    from stable_baselines3.common.vec_env import SubprocVecEnv

    cache = str(tmp_path / "cache.db")
    vec = SubprocVecEnv(
        vector_env_fns("NAS-CIFAR10-v0", 2, cache_path=cache, data_dir=str(data_dir), **KWARGS)
    )
    try:
        vec.seed(SEED)
        vec.reset()
        rng = np.random.default_rng(1)
        probe = CifarNASEnv(**KWARGS, data_dir=str(data_dir))
        tokens = np.array([probe.space.sample(rng) for _ in range(2)])
        for step in range(tokens.shape[1]):
            _, rewards, dones, infos = vec.step(tokens[:, step])
        assert dones.all() and all(0 < r <= 1 for r in rewards)
        assert vec.get_attr("evaluation")[0].backend.name == "local"
    finally:
        vec.close()
    assert sorted(r["arch"] for r in ResultsStore(cache).rows()) == sorted(i["arch"] for i in infos)


def test_claims_are_renewed_while_a_child_trains_in_the_claiming_thread(tmp_path, data_dir):
    """The heartbeat thread runs while torch trains a real child inline (the local backend)."""
    store = ResultsStore(tmp_path / "cache.db", claim_ttl=0.2)
    env = CifarNASEnv(num_layers=6, max_layers=6, fidelity="smoke", download=False, data_dir=str(data_dir))
    env.reset(seed=SEED)
    arch = env.space.decode(env.space.sample(np.random.default_rng(5)))
    assert store.claim("x", "fp") == "claimed"
    claimed = time.time()
    result = env.evaluation.evaluator.evaluate(arch, 0)  # ~1 s of training in this thread, 20x the interval
    trained = time.time()
    (heartbeat,) = store.conn.execute("SELECT heartbeat FROM claims WHERE arch = 'x'").fetchone()
    assert result.status == "ok" and trained - claimed > 0.3
    assert heartbeat > trained - 0.3  # renewed during training, not only at the claim
    assert ResultsStore(tmp_path / "cache.db", claim_ttl=0.2).claim("x", "fp") == "busy"
    store.release("x", "fp")
