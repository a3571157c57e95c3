"""Several children per device (issue 12): the pool's ``devices`` / ``children_per_device`` option.

The CPU tests run the same code path a GPU machine runs (one worker per slot, each pinned to its
device, threads divided), with real CIFAR-10 smoke children; the ``gpu`` tests repeat it on CUDA
and check the CUDA-only training settings. ``benchmarks/bench_gpu.py`` measures the speed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import nas_env  # noqa: F401 - registers the ids
from nas_env.backends import LocalBackend, PoolBackend, make_backend
from nas_env.backends.devices import resolve_devices
from nas_env.data.cifar import load_cifar10
from nas_env.evaluators.cifar import CifarTrainingEvaluator
from nas_env.records import EvalResult
from nas_env.search_spaces.cnn import CnnArchitecture, CnnSearchSpace
from nas_env.store import ResultsStore
from nas_env.training.cifar import LANDED_CUDA, CudaTuning, train_child
from nas_env.training.recipes import FIDELITIES

SPACE = CnnSearchSpace(num_layers=2, max_layers=2)
ARCH = CnnArchitecture.from_str("3x3:36 | 5x5:48 <0")


class WhereEvaluator(CifarTrainingEvaluator):
    """Real smoke training; the result also says which process, device and thread count trained it."""

    def evaluate(self, arch: Any, seed: int, with_test: bool = False) -> EvalResult:
        result = super().evaluate(arch, seed, with_test)
        where = {"pid": float(os.getpid()), "threads": float(torch.get_num_threads())}
        where["cuda_index"] = float(self.device.index if self.device.type == "cuda" else -1)
        return EvalResult(result.status, {**result.metrics, **where}, result.num_params, seed=seed)


def archs(n: int) -> list[Any]:
    rng = np.random.default_rng(0)
    return [SPACE.decode(SPACE.sample(rng)) for _ in range(n)]


def accuracies(results: list[EvalResult]) -> list[tuple[float, float]]:
    return [(r.metrics["val_accuracy"], r.metrics["train_loss"]) for r in results]


# ---- bad settings: clear errors naming the allowed values -------------------------------------------------


def test_bad_device_settings_name_the_allowed_values():
    evaluator = CifarTrainingEvaluator("smoke", device="cpu")
    with pytest.raises(
        ValueError, match=re.escape("children_per_device=0 is out of range; expected an integer in")
    ):
        PoolBackend(evaluator, devices=["cpu"], children_per_device=0)
    with pytest.raises(
        ValueError,
        match=re.escape("'cuda:0' is not allowed for an evaluator on 'cpu'; expected one of ['cpu']"),
    ):
        PoolBackend(evaluator, devices=["cuda:0"], children_per_device=2)
    with pytest.raises(ValueError, match=re.escape("'tpu:3' is not a device; expected one of ['cpu']")):
        PoolBackend(evaluator, devices=["tpu:3"])
    with pytest.raises(ValueError, match="'cpu' is repeated"):
        PoolBackend(evaluator, devices=["cpu", "cpu"])
    with pytest.raises(ValueError, match=re.escape("devices='cpu' must be a non-empty list")):
        PoolBackend(evaluator, devices="cpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_workers=2 cannot be combined with devices"):
        PoolBackend(evaluator, num_workers=2, children_per_device=2)
    with pytest.raises(ValueError, match="memory_per_child_gb=4 applies to CUDA devices only"):
        PoolBackend(evaluator, devices=["cpu"], memory_per_child_gb=4)
    with pytest.raises(ValueError, match=re.escape("CudaTuning.eval_batch=0 must be a positive integer")):
        CudaTuning(eval_batch=0)


def test_device_slots_and_default_counts_on_cpu():
    evaluator = CifarTrainingEvaluator("smoke", device="cpu")
    pool = PoolBackend(evaluator, children_per_device=3)
    assert pool.devices == [torch.device("cpu")] and pool.num_workers == 3
    assert resolve_devices(["cpu"], "cpu") == resolve_devices(None, "cpu") == [torch.device("cpu")]
    assert make_backend("pool", evaluator, devices=["cpu"]).num_workers == len(os.sched_getaffinity(0))
    assert PoolBackend(evaluator).devices is None  # without the option: the landed pool, unchanged
    if not torch.cuda.is_available():  # no GPU here: no CUDA device is allowed
        with pytest.raises(ValueError, match=re.escape("expected names from []")):
            PoolBackend(CifarTrainingEvaluator("smoke", device="cuda"), children_per_device=2)


def test_cuda_tuning_leaves_cpu_training_unchanged(data_dir: Path):
    """CPU training ignores CudaTuning: the landed loop, bit for bit (the cache keys rely on it)."""
    data = load_cifar10(data_dir)
    fidelity = FIDELITIES["smoke"]
    reports = []
    for tuning in (CudaTuning(), LANDED_CUDA, CudaTuning(deterministic=True, eval_batch=7)):
        torch.manual_seed(0)
        reports.append(train_child(_build(ARCH), data, fidelity, 5, "cpu", cuda_tuning=tuning))
    assert [(r.val_accuracies, r.train_loss) for r in reports[1:]] == [
        (reports[0].val_accuracies, reports[0].train_loss)
    ] * 2


def _build(arch: Any) -> torch.nn.Module:
    from nas_env.builders.cnn import build_cnn

    return build_cnn(arch)


# ---- K children on one device, real training ------------------------------------------------------------


@pytest.mark.slow
def test_two_children_per_cpu_match_inline_training(data_dir: Path):
    """K=2 workers on the CPU: each pinned, one thread each, the same rewards as inline training."""
    evaluator = WhereEvaluator("smoke", data_dir=data_dir, device="cpu")
    batch = archs(4)
    requests = [(a, 10 + i) for i, a in enumerate(batch)]
    torch.set_num_threads(1)
    inline = [c.result for c in LocalBackend(evaluator).map(requests)]
    with PoolBackend(evaluator, devices=["cpu"], children_per_device=2, num_threads=1) as pool:
        pooled = [c.result for c in pool.map(requests)]
    assert all(r.status == "ok" for r in pooled), [r.error for r in pooled]
    assert accuracies(pooled) == accuracies(inline)
    assert {r.metrics["threads"] for r in pooled} == {1.0}
    assert len({r.metrics["pid"] for r in pooled} - {float(os.getpid())}) >= 1


@pytest.mark.slow
def test_env_with_children_per_device_stores_every_child(tmp_path: Path, data_dir: Path):
    """The option through the env: results go through its store (and claims) unchanged."""
    cache = tmp_path / "cache.db"
    env = gym.make(
        "NAS-CIFAR10-v0",
        num_layers=2,
        max_layers=2,
        fidelity="smoke",
        device="cpu",
        data_dir=str(data_dir),
        cache_path=str(cache),
        backend="pool",
        backend_kwargs={"devices": ["cpu"], "children_per_device": 2},
    )
    env.reset(seed=0)
    batch = archs(3)
    try:
        out = list(env.unwrapped.evaluate_archs(batch))  # type: ignore[attr-defined]
    finally:
        env.close()
    assert sorted(i for i, _, _ in out) == [0, 1, 2]
    assert all(info["eval_status"] == "ok" for _, _, info in out)
    store = ResultsStore(cache)
    fingerprint = CifarTrainingEvaluator("smoke", data_dir=data_dir, device="cpu").fingerprint
    assert all(store.lookup(a.to_str(), fingerprint) is not None for a in batch)


# ---- on a GPU ---------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_deterministic_cuda_training_repeats_bit_for_bit(data_dir: Path):
    data = load_cifar10(data_dir)
    reports = []
    for _ in range(2):
        torch.manual_seed(0)
        reports.append(
            train_child(
                _build(ARCH), data, FIDELITIES["smoke"], 5, "cuda", cuda_tuning=CudaTuning(deterministic=True)
            )
        )
    assert reports[0].val_accuracies == reports[1].val_accuracies
    assert reports[0].train_loss == reports[1].train_loss
    torch.manual_seed(0)
    fast = train_child(_build(ARCH), data, FIDELITIES["smoke"], 5, "cuda")
    assert fast.val_accuracies[0] == pytest.approx(reports[0].val_accuracies[0], abs=0.05)


@pytest.mark.gpu
def test_two_children_per_gpu(data_dir: Path):
    evaluator = WhereEvaluator("smoke", data_dir=data_dir, device="cuda")
    devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    with PoolBackend(evaluator, devices=devices, children_per_device=2, memory_per_child_gb=4) as pool:
        results = [c.result for c in pool.map([(a, i) for i, a in enumerate(archs(4))])]
    assert all(r.status == "ok" for r in results), [r.error for r in results]
    assert {r.metrics["cuda_index"] for r in results} <= set(range(len(devices)))
