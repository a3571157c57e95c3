"""The Ray backend on a local Ray instance with 2 CPUs: results, resources, joining, fault tolerance.

The kill test SIGKILLs the Ray worker process that is training a child (its pid comes from a file
the evaluator writes) and checks that the child is retried, that every attempt is in the results
store, and that the children completed before the kill are neither lost nor trained again.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray_cluster import TESTS, WORKER_ENV, local_ray
from synthetic import MatchEvaluator

from nas_env.backends import LocalBackend
from nas_env.backends.ray import RayBackend
from nas_env.envs.token_env import TokenNASEnv
from nas_env.errors import EvaluationError
from nas_env.evaluation import Evaluation
from nas_env.evaluators.cifar import CifarTrainingEvaluator
from nas_env.records import EvalResult
from nas_env.rewards import get_reward
from nas_env.search_spaces.cnn import CnnSearchSpace

SPACE = CnnSearchSpace(num_layers=3, max_layers=6)


@pytest.fixture(scope="session")
def ray_local() -> Any:
    yield from local_ray()


def archs(n: int, seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    while len(out) < n:
        arch = SPACE.decode(SPACE.sample(rng))
        out.setdefault(arch.to_str(), arch)
    return list(out.values())


def file_name(arch: Any) -> str:
    return re.sub(r"[^0-9a-z]", "_", arch.to_str())


class HeldEvaluator(MatchEvaluator):
    """Writes ``<folder>/<arch>.<pid>``; the ``hold`` architecture then waits for ``<folder>/release``."""

    def __init__(self, folder: str, hold: str = "", kill_self: bool = False, raise_for: str = "") -> None:
        super().__init__(0)
        self.folder, self.hold, self.kill_self, self.raise_for = folder, hold, kill_self, raise_for

    def evaluate(self, arch: Any, seed: int) -> EvalResult:
        Path(self.folder, f"{file_name(arch)}.{os.getpid()}").write_text("")
        if self.kill_self:
            os.kill(os.getpid(), signal.SIGKILL)
        if arch.to_str() == self.raise_for:
            raise ZeroDivisionError("a bug in the evaluator")
        while arch.to_str() == self.hold and not Path(self.folder, "release").exists():
            time.sleep(0.05)
        return super().evaluate(arch, seed)


def wait_for(folder: Path, pattern: str, timeout: float = 120.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
        time.sleep(0.05)
    raise TimeoutError(f"no {pattern} in {folder} after {timeout}s")


def test_ray_results_equal_local_and_arrive_as_they_complete(ray_local, tmp_path):
    batch = archs(4)
    requests = [(a, 100 + i) for i, a in enumerate(batch)]
    expected = [c.result for c in LocalBackend(MatchEvaluator(0)).map(requests)]
    backend = RayBackend(HeldEvaluator(str(tmp_path), hold=batch[0].to_str()))
    assert backend.num_gpus == 0 and backend.num_cpus == 1
    tickets = [backend.submit(a, s) for a, s in requests]
    done = []
    while len(done) < 3:  # the held child does not block the others
        done += backend.harvest(timeout=60)
    assert sorted(c.ticket for c in done) == tickets[1:]
    (tmp_path / "release").write_text("")
    done += backend.harvest(timeout=60)
    backend.close()
    assert ray_local.is_initialized()  # the backend joined the fixture's instance, so leaves it running
    assert [c.result for c in sorted(done, key=lambda c: c.ticket)] == expected


def test_killed_ray_worker_child_is_retried_and_nothing_completed_is_lost(ray_local, tmp_path):
    batch = archs(4, seed=1)
    held = batch[3]
    evaluator = HeldEvaluator(str(tmp_path), hold=held.to_str())
    evaluation = Evaluation(evaluator, get_reward("accuracy"), str(tmp_path / "cache.db"), backend="ray")
    env = TokenNASEnv(SPACE, evaluation)
    env.reset(seed=0)
    stream = env.evaluate_archs(batch)
    first = [next(stream) for _ in range(3)]  # three children complete; the fourth is held
    pid_file = wait_for(tmp_path, f"{file_name(held)}.*")
    os.kill(int(pid_file.suffix[1:]), signal.SIGKILL)  # the Ray worker training the held child
    time.sleep(0.5)
    (tmp_path / "release").write_text("")  # the retry (started when the loss is noticed) may finish
    (last,) = list(stream)
    env.close()
    assert sorted(i for i, _, _ in first) == [0, 1, 2] and last[0] == 3
    assert last[2]["eval_status"] == "ok" and last[1] == MatchEvaluator(0).score(held)
    rows = env.evaluation.store.rows()
    assert [(r["arch"], r["status"]) for r in rows if r["arch"] == held.to_str()] == [
        (held.to_str(), "failed"),
        (held.to_str(), "ok"),
    ]
    failed = next(r for r in rows if r["status"] == "failed")
    assert "WorkerCrashedError" in failed["error"] and "attempt 1 of 3" in failed["error"]
    for arch in batch[:3]:  # completed children: stored once, trained once
        assert [r["status"] for r in rows if r["arch"] == arch.to_str()] == ["ok"]
        assert len(list(tmp_path.glob(f"{file_name(arch)}.*"))) == 1


def test_ray_gives_up_after_max_retries_with_the_error_recorded(ray_local, tmp_path):
    backend = RayBackend(HeldEvaluator(str(tmp_path), kill_self=True), max_retries=1)
    done = backend.evaluate(archs(1)[0], 3)
    backend.close()
    assert done.result.status == "failed" and done.attempts == 2
    assert "WorkerCrashedError" in done.result.error and "attempt 2 of 2" in done.result.error


def test_evaluator_exception_is_not_retried(ray_local, tmp_path):
    bad = archs(1, seed=5)[0]
    backend = RayBackend(HeldEvaluator(str(tmp_path), raise_for=bad.to_str()))
    with pytest.raises(EvaluationError, match=re.escape(f"evaluating {bad.to_str()!r} failed")) as info:
        backend.evaluate(bad, 0)
    backend.close()
    assert "ZeroDivisionError" in str(info.value)
    assert len(list(tmp_path.glob(f"{file_name(bad)}.*"))) == 1


def test_children_ask_for_a_gpu_when_they_train_on_cuda():
    assert RayBackend(CifarTrainingEvaluator("smoke", device="cuda")).num_gpus == 1
    assert RayBackend(CifarTrainingEvaluator("smoke", device="cpu")).num_gpus == 0
    assert RayBackend(CifarTrainingEvaluator("smoke", device="cuda"), num_gpus=0.5).num_gpus == 0.5
    with pytest.raises(ValueError, match=re.escape("num_cpus=0 must be > 0")):
        RayBackend(MatchEvaluator(0), num_cpus=0)


def test_env_joins_the_cluster_named_by_ray_address(ray_local):
    """A second driver process with RAY_ADDRESS set joins this instance instead of starting its own."""
    address = ray_local.get_runtime_context().gcs_address
    runtime_env = {"env_vars": WORKER_ENV}  # how a driver ships code its workers import
    code = (
        "import ray, gymnasium as gym, numpy as np, synthetic\n"
        "env = gym.make('NAS-Synthetic-v0').unwrapped\n"
        "from nas_env.backends.ray import RayBackend\n"
        f"env.evaluation.use_backend('ray', init_kwargs={{'runtime_env': {runtime_env!r}}})\n"
        "env.reset(seed=0)\n"
        "arch = env.space.decode(env.space.sample(np.random.default_rng(0)))\n"
        "reward, info = env.evaluate_arch(arch)\n"
        "print(ray.get_runtime_context().gcs_address, info['eval_status'])\n"
        "env.close()\n"
    )
    env = {**os.environ, "RAY_ADDRESS": address, "PYTHONPATH": f"{TESTS}{os.pathsep}{TESTS.parent}"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == [address, "ok"]


@pytest.mark.gpu
def test_ray_trains_children_on_the_gpu(ray_local, data_dir):
    if not ray_local.cluster_resources().get("GPU"):
        pytest.skip("the local Ray instance has no GPU")
    evaluator = CifarTrainingEvaluator("smoke", data_dir=str(data_dir), device="cuda", download=False)
    space = CnnSearchSpace(num_layers=2, max_layers=2)
    rng = np.random.default_rng(0)
    batch = [space.decode(space.sample(rng)) for _ in range(2)]
    with RayBackend(evaluator) as backend:
        done = backend.map([(a, 0) for a in batch])
    assert [c.result.status for c in done] == ["ok", "ok"]
