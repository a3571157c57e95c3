"""Backends on one machine: local (inline) and process pool, retries on worker death, the env hook.

Evaluators here are small real evaluators (the synthetic match score of ``tests/synthetic.py``);
the kill tests SIGKILL the worker process that is evaluating a child, found through a pid file the
evaluator writes, and check that the child is retried and that nothing completed is lost.
"""

from __future__ import annotations

import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nas_env.backends import (
    LocalBackend,
    PoolBackend,
    make_backend,
    threads_per_worker,
    vector_env_fns,
)
from nas_env.backends.threads import limit_threads
from nas_env.errors import EvaluationError
from nas_env.records import EvalResult
from nas_env.search_spaces.cnn import CnnSearchSpace
from nas_env.store import ResultsStore
from tests.synthetic import MatchEvaluator, SyntheticNASEnv

SPACE = CnnSearchSpace(num_layers=3, max_layers=6)


def archs(n: int, seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    while len(out) < n:
        arch = SPACE.decode(SPACE.sample(rng))
        if all(a.to_str() != arch.to_str() for a in out):
            out.append(arch)
    return out


class PidFileEvaluator(MatchEvaluator):
    """The match score, after writing ``<dir>/<arch>.<pid>`` and sleeping ``delay_s`` (for kill tests)."""

    def __init__(self, folder: str, delay_s: float, slow: str = "") -> None:
        super().__init__(0, delay_s)
        self.folder = folder
        self.slow = slow

    def evaluate(self, arch: Any, seed: int) -> EvalResult:
        name = arch.to_str().replace(" ", "").replace("|", "_").replace("<", "-")
        Path(self.folder, f"{name}.{os.getpid()}").write_text("")
        if arch.to_str() != self.slow:
            return MatchEvaluator(self.target_seed).evaluate(arch, seed)
        return super().evaluate(arch, seed)


class SuicideEvaluator(MatchEvaluator):
    """Kills its own worker process on every evaluation: the retry budget runs out."""

    def evaluate(self, arch: Any, seed: int) -> EvalResult:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


class BuggyEvaluator(MatchEvaluator):
    """Raises for architectures with 64-filter first layers (a bug, not a failed child)."""

    def evaluate(self, arch: Any, seed: int) -> EvalResult:
        if arch.layers[0].num_filters == 64:
            raise KeyError("boom")
        return super().evaluate(arch, seed)


def wait_for_files(folder: Path, pattern: str, count: int, timeout: float = 60.0) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(folder.glob(pattern))
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise TimeoutError(f"no {count} files {pattern} in {folder} after {timeout}s: {list(folder.iterdir())}")


# ---- the interface, on the local backend ---------------------------------------------------------------


def test_local_backend_matches_direct_evaluation_and_keeps_other_tickets():
    evaluator = MatchEvaluator(0)
    batch = archs(4)
    backend = LocalBackend(evaluator)
    stray = backend.submit(batch[3], 7)  # someone else's ticket, submitted first
    done = backend.map([(a, i) for i, a in enumerate(batch[:3])])
    assert [c.arch for c in done] == batch[:3]
    assert [c.result for c in done] == [evaluator.evaluate(a, i) for i, a in enumerate(batch[:3])]
    assert all(c.attempts == 1 and not c.failed_attempts for c in done)
    assert backend.pending == 1  # the stray ticket was not handed to map()
    (last,) = backend.harvest()
    assert last.ticket == stray and last.seed == 7
    assert backend.pending == 0 and backend.harvest(timeout=0) == []


def test_evaluator_exception_names_arch_and_loses_nothing():
    batch = archs(12, seed=1)
    bad = next(a for a in batch if a.layers[0].num_filters == 64)
    good = [a for a in batch if a.layers[0].num_filters != 64][:3]
    backend = LocalBackend(BuggyEvaluator(0))
    for a in [good[0], bad, *good[1:]]:
        backend.submit(a, 0)
    seen = [c.arch for c in backend.harvest()]
    with pytest.raises(EvaluationError, match=re.escape(f"evaluating {bad.to_str()!r} failed")):
        while True:
            seen += [c.arch for c in backend.harvest()]
    while backend.pending:
        seen += [c.arch for c in backend.harvest()]
    assert seen == good


def test_make_backend_unknown_name_suggests():
    with pytest.raises(ValueError, match=re.escape("backend='pol' is not allowed; expected one of")):
        make_backend("pol", MatchEvaluator(0))
    with pytest.raises(ValueError, match="Did you mean 'pool'"):
        make_backend("pol", MatchEvaluator(0))
    with pytest.raises(ValueError, match=re.escape("max_retries=-1 is out of range")):
        LocalBackend(MatchEvaluator(0), max_retries=-1)


def test_threads_divided_between_workers():
    assert threads_per_worker(2, total=2) == 1
    assert threads_per_worker(2, total=16) == 8
    assert threads_per_worker(4, total=2) == 1
    with pytest.raises(ValueError, match=re.escape("num_workers=0 is out of range")):
        threads_per_worker(0)
    before = torch.get_num_threads()
    try:
        limit_threads(1)
        assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    finally:
        torch.set_num_threads(before)
    fns = vector_env_fns("NAS-CIFAR10-v0", 3, num_threads=2, fidelity="smoke")
    assert len(fns) == 3 and all(pickle.loads(pickle.dumps(f)).args == ("NAS-CIFAR10-v0", 2) for f in fns)


# ---- the process pool ------------------------------------------------------------------------------


def test_pool_matches_local_and_divides_threads():
    batch = archs(4, seed=2)
    requests = [(a, 10 + i) for i, a in enumerate(batch)]
    with PoolBackend(MatchEvaluator(0), num_workers=2, num_threads=1) as pool:
        assert [c.result for c in pool.map(requests)] == [
            c.result for c in LocalBackend(MatchEvaluator(0)).map(requests)
        ]


def test_pool_retries_a_killed_worker_and_loses_nothing(tmp_path):
    batch = archs(4, seed=3)
    slow = batch[3]
    pool = PoolBackend(
        PidFileEvaluator(str(tmp_path), delay_s=30.0, slow=slow.to_str()), num_workers=2, num_threads=1
    )
    try:
        first = pool.map([(a, 0) for a in batch[:3]])  # completed before the kill
        ticket = pool.submit(slow, 0)
        (pid_file,) = wait_for_files(
            tmp_path, f"{slow.to_str().replace(' ', '').replace('|', '_').replace('<', '-')}.*", 1
        )
        pool.evaluator.delay_s = 0.0  # the retry runs in a new pool, with the evaluator pickled again
        os.kill(int(pid_file.suffix[1:]), signal.SIGKILL)
        (done,) = pool.harvest(timeout=120)
    finally:
        pool.close()
    assert done.ticket == ticket and done.result.status == "ok"
    assert done.attempts == 2
    assert "worker process died" in done.failed_attempts[0].error
    assert "attempt 1 of 3" in done.failed_attempts[0].error
    assert [c.result.status for c in first] == ["ok"] * 3
    # nothing completed was evaluated again: one pid file per architecture but the retried one
    for a in batch[:3]:
        name = a.to_str().replace(" ", "").replace("|", "_").replace("<", "-")
        assert len(list(tmp_path.glob(f"{name}.*"))) == 1


def test_pool_gives_up_after_max_retries():
    with PoolBackend(SuicideEvaluator(0), num_workers=1, num_threads=1, max_retries=1) as pool:
        done = pool.evaluate(archs(1)[0], 5)
    assert done.result.status == "failed" and done.attempts == 2 and done.seed == 5
    assert "attempt 2 of 2" in done.result.error and "attempt 1 of 2" in done.failed_attempts[0].error


# ---- the env hook -----------------------------------------------------------------------------------


def test_env_evaluate_archs_trains_duplicates_once_and_stores_every_attempt(tmp_path):
    env = SyntheticNASEnv(cache_path=str(tmp_path / "cache.db"))
    env.evaluation.backend = PoolBackend(SuicideEvaluator(0), num_workers=1, num_threads=1, max_retries=1)
    env.reset(seed=0)
    a = archs(1)[0]
    try:
        ((i, reward, info),) = list(env.evaluate_archs([a]))
    finally:
        env.close()
    assert (i, reward, info["eval_status"], info["cached"]) == (0, 0.0, "failed", False)
    rows = env.evaluation.store.rows()
    assert [r["status"] for r in rows] == ["failed", "failed"]  # both attempts recorded

    env = SyntheticNASEnv(cache_path=str(tmp_path / "cache2.db"))
    env.reset(seed=0)
    b = archs(3, seed=4)
    out = sorted(env.evaluate_archs([b[0], b[1], b[0], b[2]]))
    assert [info["cached"] for _, _, info in out] == [False, False, True, False]
    assert out[0][1] == out[2][1] == MatchEvaluator(0).score(b[0])
    assert len(env.evaluation.store) == 3
    again = list(env.evaluate_archs([b[1]]))
    assert again[0][2]["cached"] and len(env.evaluation.store) == 3
    # evaluate_arch (what step() calls) gives the same reward and info as the batch path
    reward, info = SyntheticNASEnv().evaluate_arch(b[0])
    assert reward == out[0][1] and info.keys() == out[0][2].keys()


@pytest.mark.parametrize("backend", ["pool", "ray"])
def test_env_with_a_parallel_backend_pickles(backend):
    """Vector envs and checkpoints pickle envs: a backend pickles its settings, never its workers."""
    import gymnasium as gym

    import nas_env  # noqa: F401

    kwargs = {"num_workers": 1} if backend == "pool" else {"num_cpus": 2}
    env = gym.make("NAS-CIFAR10-v0", fidelity="smoke", backend=backend, backend_kwargs=kwargs, download=False)
    copy = pickle.loads(pickle.dumps(env.unwrapped))
    copied = copy.evaluation.backend
    assert type(copied) is type(env.unwrapped.evaluation.backend) and copied.name == backend
    assert copied.pending == 0
    assert getattr(copied, "num_workers", None) == 1 or copied.num_cpus == 2
    with pytest.raises(ValueError, match="Did you mean 'ray'"):
        gym.make("NAS-CIFAR10-v0", backend="rays")


def test_ray_is_not_imported_and_missing_ray_is_a_dependency_error():
    code = (
        "import sys, numpy as np, gymnasium as gym, nas_env, nas_env.backends, agents\n"
        "env = gym.make('NAS-CIFAR10-v0', fidelity='smoke', backend='ray')\n"
        "assert 'ray' not in sys.modules, 'ray imported eagerly'\n"
        "sys.modules['ray'] = None  # as if Ray were not installed\n"
        "from nas_env.errors import DependencyNotInstalled\n"
        "try:\n"
        "    space = env.unwrapped.space\n"
        "    arch = space.decode(space.sample(np.random.default_rng(0)))\n"
        "    env.unwrapped.evaluation.backend.submit(arch, 0)\n"
        "except DependencyNotInstalled as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install nas-env[ray]" in out.stdout, out.stderr


OTHER_WORKER = """
import json, sys, time
from nas_env.store import ResultsStore
from nas_env.records import EvalResult
path, arch, fingerprint, hold = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
store = ResultsStore(path)
print(store.claim(arch, fingerprint), flush=True)
time.sleep(hold)  # "training"
if hold > 0:
    store.add(arch, fingerprint, EvalResult("ok", {"val_accuracy": 0.123}, seed=777), 0.123)
    store.release(arch, fingerprint)
"""


def test_env_waits_for_a_child_another_process_is_training(tmp_path):
    """Workers sharing a store train each architecture once: a claimed one is waited for, not trained."""
    cache = str(tmp_path / "cache.db")
    env = SyntheticNASEnv(cache_path=cache)
    env.reset(seed=0)
    x, y = archs(2, seed=5)
    other = subprocess.Popen(
        [sys.executable, "-c", OTHER_WORKER, cache, x.to_str(), env.evaluation.evaluator.fingerprint, "1.5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert other.stdout is not None and other.stdout.readline().strip() == "claimed"
    start = time.monotonic()
    out = list(env.evaluate_archs([x, y, x]))
    waited = time.monotonic() - start
    other.wait(timeout=60)
    env.close()
    assert [i for i, _, _ in out] == [1, 0, 2]  # y (trained here) first, then x once the other stored it
    assert [info["cached"] for _, _, info in out] == [False, True, True]
    assert [(reward, info["seed"]) for _, reward, info in out[1:]] == [(0.123, 777)] * 2
    assert out[0][1] == MatchEvaluator(0).score(y) and 0.5 < waited < 30
    assert sorted(r["arch"] for r in env.evaluation.store.rows()) == sorted([x.to_str(), y.to_str()])
    assert env.evaluation.store.conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0


def test_env_takes_over_the_claim_of_a_process_that_died(tmp_path):
    cache = str(tmp_path / "cache.db")
    env = SyntheticNASEnv(cache_path=cache)
    env.reset(seed=0)
    (x,) = archs(1, seed=6)
    args = [sys.executable, "-c", OTHER_WORKER, cache, x.to_str(), env.evaluation.evaluator.fingerprint, "0"]
    assert subprocess.run(args, capture_output=True, text=True, timeout=60).stdout.strip() == "claimed"
    ((_, reward, info),) = list(env.evaluate_archs([x]))  # the claimant exited without a result
    env.close()
    assert not info["cached"] and reward == MatchEvaluator(0).score(x)
    assert [r["arch"] for r in env.evaluation.store.rows()] == [x.to_str()]


def test_env_releases_its_claims_when_the_caller_stops_early(tmp_path):
    cache = str(tmp_path / "cache.db")
    env = SyntheticNASEnv(cache_path=cache)
    env.reset(seed=0)
    x, y = archs(2, seed=7)
    stream = env.evaluate_archs([x, y])
    first = next(stream)[2]["arch"]
    stream.close()  # y (or x) was claimed and submitted, never finished here
    other = ResultsStore(cache)
    rest = y.to_str() if first == x.to_str() else x.to_str()
    assert other.claim(first, env.evaluation.evaluator.fingerprint) == "done"
    assert other.claim(rest, env.evaluation.evaluator.fingerprint) == "claimed"  # not left "busy" for a day
    env.close()
