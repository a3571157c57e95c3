"""NAS-Bench-201 weight sharing: an exact supernet, exact BN re-calibration, an env that keeps the contract.

Real CIFAR-10 with tiny settings (8x8 images, 8 channels, small minibatches): a cell costs
milliseconds. The benchmark's ranking figures are in docs/weight_sharing.md.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from bench_modules import load_benchmark
from gymnasium.utils.env_checker import check_env as gym_check_env
from search_runs import kill_search_midway, read_csv
from torch import nn

import nas_env  # noqa: F401 - registers the envs
from agents import make_agent
from nas_env.builders.nb201_supernet import NB201Supernet
from nas_env.errors import InvalidArchitectureError
from nas_env.search_spaces.cnn import CnnArchitecture
from nas_env.search_spaces.nb201 import NB201Architecture, NB201SearchSpace
from scripts import search

REPO = Path(__file__).resolve().parents[1]
TINY = {"batch_size": 16, "resolution": 8, "channels": 8, "train_images": 2048, "valid_images": 512}
WS = {"weight_sharing": True, "shared_steps": 2, "valid_batch": 64, "shared_kwargs": TINY}


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: tiny tensors gain nothing from two (see tests/test_weight_sharing.py)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def random_cells(n: int, seed: int) -> list[NB201Architecture]:
    space, rng = NB201SearchSpace(), np.random.default_rng(seed)
    return [space.decode(space.sample(rng)) for _ in range(n)]


def make_env(**overrides) -> gym.Env:
    return gym.make("NAS-Bench-201-v0", **{**WS, **overrides})


def episode(env: gym.Env, cell: NB201Architecture) -> tuple[float, dict]:
    for action in cell.tokens:
        _, reward, terminated, _, info = env.step(action)
    assert terminated
    env.reset()
    return float(reward), info


@pytest.mark.parametrize("cells_per_stage", [1, 2])
def test_a_cells_forward_and_gradients_equal_its_standalone_network(cells_per_stage: int) -> None:
    supernet = NB201Supernet(channels=8, cells_per_stage=cells_per_stage, seed=3)
    x = torch.randn(6, 3, 16, 16)
    cells = random_cells(12, seed=0) + [
        NB201Architecture(("none",) * 6),
        NB201Architecture(("nor_conv_3x3",) * 6),
    ]
    for cell in cells:
        child = supernet.export_child(cell)
        supernet.train(), child.train()
        supernet.zero_grad()
        out = supernet(x, cell)
        expected = child(x)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
        out.square().sum().backward()
        expected.square().sum().backward()
        torch.testing.assert_close(
            supernet.stem[0].weight.grad, child.stem[0].weight.grad, rtol=1e-4, atol=1e-6
        )
        assert supernet.num_params(cell) == sum(p.numel() for p in child.parameters())


def test_weights_are_shared_between_cells_that_pick_the_same_operation() -> None:
    supernet = NB201Supernet(channels=8, seed=0)
    a = NB201Architecture(
        ("nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3")
    )
    b = NB201Architecture(("nor_conv_3x3", "none", "none", "none", "none", "nor_conv_1x1"))
    conv_a, conv_b = (
        supernet.export_child(a).cells[0].edges[0][1],
        supernet.export_child(b).cells[0].edges[0][1],
    )
    torch.testing.assert_close(conv_a.weight, conv_b.weight)  # edge 0 is nor_conv_3x3 in both
    # the same seed builds the same weights; another seed other weights
    same, other = NB201Supernet(channels=8, seed=0), NB201Supernet(channels=8, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(supernet.parameters(), same.parameters(), strict=True))
    assert not torch.equal(supernet.stem[0].weight, other.stem[0].weight)


def test_recalibrated_batch_norm_equals_the_standalone_cells_statistics() -> None:
    supernet = NB201Supernet(channels=8, seed=1)
    batches = [torch.randn(16, 3, 8, 8) for _ in range(3)]
    x = torch.randn(5, 3, 8, 8)
    for cell in random_cells(4, seed=1):
        child = supernet.export_child(cell)
        for m in child.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        child.train()
        with torch.no_grad():
            for xb in batches:
                child(xb)
        child.eval()
        supernet.recalibrate(cell, batches)
        assert not supernet.training
        torch.testing.assert_close(supernet(x, cell), child(x), rtol=1e-5, atol=1e-6)
        assert all(m.momentum == 0.1 for m in supernet.modules() if isinstance(m, nn.BatchNorm2d))


def test_the_supernet_refuses_another_space() -> None:
    with pytest.raises(InvalidArchitectureError, match="NB201Architecture cells, got CnnArchitecture"):
        NB201Supernet(channels=8).check_arch(CnnArchitecture.from_str("3x3:36"))


def test_env_passes_the_checker_and_logs_every_score(data_dir: Path) -> None:
    env = make_env(reward="accuracy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(make_env().unwrapped, skip_render_check=False)
    env.reset(seed=0)
    cell = random_cells(1, seed=5)[0]
    infos = [episode(env, cell)[1] for _ in range(4)]
    assert [i["shared_step"] for i in infos] == [0, 2, 4, 6]
    assert all(i["weight_sharing"] and not i["cached"] and i["eval_status"] == "ok" for i in infos)
    assert all(0 <= i["val_accuracy"] <= 1 and np.isfinite(i["train_loss"]) for i in infos)
    assert infos[0]["num_params"] == NB201Supernet(channels=8).num_params(cell)
    rows = env.unwrapped.evaluation.store.rows(env.unwrapped.evaluation.evaluator.fingerprint)
    assert [r["arch"] for r in rows] == [cell.to_str()] * 4


def test_one_shot_mode_scores_without_training_and_recalibrates_deterministically(data_dir: Path) -> None:
    """``shared_steps=0`` after a warm-up is RSPS: the weights stop moving, a cell's score is fixed."""
    env = make_env(shared_steps=0, shared_kwargs={**TINY, "warmup_steps": 6, "bn_images": 64})
    env.reset(seed=0)
    cell = random_cells(1, seed=2)[0]
    first, second = episode(env, cell)[1], episode(env, cell)[1]
    assert first["shared_step"] == second["shared_step"] == 6
    evaluator = env.unwrapped.evaluation.evaluator
    ranked = evaluator.rank(random_cells(3, seed=3), images=128)
    assert ranked == evaluator.rank(random_cells(3, seed=3), images=128)
    losses = evaluator.rank(random_cells(3, seed=3), images=128, metric="loss")
    assert all(0 < loss < 10 for loss in losses) and losses != ranked
    with pytest.raises(ValueError, match=re.escape("metric='los'")):
        evaluator.rank(random_cells(1, seed=3), metric="los")


def test_state_dict_resumes_exactly(data_dir: Path, tmp_path: Path) -> None:
    whole = make_env()
    whole.reset(seed=7)
    cells = random_cells(6, seed=4)
    [episode(whole, c) for c in cells[:3]]
    torch.save(whole.unwrapped.state_dict(), tmp_path / "ws.pt")
    tail = [episode(whole, c)[0] for c in cells[3:]]
    resumed = make_env()
    resumed.reset(seed=7)
    resumed.unwrapped.load_state_dict(torch.load(tmp_path / "ws.pt", weights_only=True))
    assert [episode(resumed, c)[0] for c in cells[3:]] == tail
    other = make_env(shared_kwargs={**TINY, "bn_images": 32})
    with pytest.raises(ValueError, match="resume with the same weight-sharing settings"):
        other.unwrapped.load_state_dict(torch.load(tmp_path / "ws.pt", weights_only=True))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"table_path": "t.csv"}, "table_path='t.csv', fidelity=None and test_images=None do not apply"),
        ({"fidelity": "proxy"}, "fidelity='proxy'"),
        ({"backend": "pool"}, "weight_sharing=True needs backend='local', got backend='pool'"),
        ({"shared_kwargs": {**TINY, "chanels": 8}}, "Did you mean 'channels'?"),
        ({"shared_kwargs": {**TINY, "channels": 0}}, "channels"),
        ({"shared_kwargs": {**TINY, "bn_images": 4096}}, "bn_images"),
        (
            {"weight_sharing": False},
            "['shared_kwargs', 'shared_steps', 'valid_batch'] only apply with weight_sharing=True",
        ),
    ],
)
def test_bad_arguments_name_the_value(kwargs: dict, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        make_env(**kwargs)


@pytest.mark.parametrize("agent", ["random", "evolution", "local_search", "reinforce"])
def test_agents_run_unchanged(agent: str, data_dir: Path) -> None:
    history = make_agent(agent, make_env(), seed=0).search(6)
    assert len(history) == 6
    assert [e.info["shared_step"] for e in history] == list(range(0, 12, 2))


@pytest.mark.slow
def test_nas_search_resumes_after_sigkill_exactly(data_dir: Path, tmp_path: Path) -> None:
    env_kwargs = [f"{k}={v!r}" for k, v in {**WS, "shared_kwargs": {**TINY, "resolution": 16}}.items()]
    argv = ["--env", "NAS-Bench-201-v0", "--agent", "reinforce", "--agent-kwargs", "batch_size=4",
            "--budget", "40", "--seed", "5", "--no-progress", "--env-kwargs", *env_kwargs]  # fmt: skip
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert search.main([*argv, "--out", str(reference)]) == 0
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}
    assert 10 <= kill_search_midway([*argv, "--out", str(killed)], killed, 10, env=one_thread) < 40
    assert torch.load(killed / "checkpoint.pt", weights_only=True)["env_state"]["trainer"]["step"] > 0
    assert search.main(["--out", str(killed), "--resume"]) == 0
    key = [(r["index"], r["arch"], r["reward"], r["shared_step"]) for r in read_csv(reference)]
    assert [(r["index"], r["arch"], r["reward"], r["shared_step"]) for r in read_csv(killed)] == key


def test_exhaustive_search_ranks_cells_by_accuracy_on_fixed_images(data_dir: Path) -> None:
    """``--agent exhaustive``'s ranking: every cell scored on the same images, so it is repeatable."""
    bench = load_benchmark("bench_nb201_supernet")
    env = make_env()
    env.reset(seed=0)
    episode(env, random_cells(1, 0)[0])  # creates and trains the shared weights a little
    evaluator = env.unwrapped.evaluation.evaluator
    cells = random_cells(8, 3)
    accuracy = evaluator.rank(cells, images=64, metric="accuracy")
    ranked = bench.rank_every_cell(evaluator, 64, cells)
    assert sorted(c.to_str() for c in ranked) == sorted(c.to_str() for c in cells)
    assert [accuracy[cells.index(c)] for c in ranked] == sorted(accuracy, reverse=True)
    assert [c.to_str() for c in bench.rank_every_cell(evaluator, 64, cells)] == [c.to_str() for c in ranked]
    env.close()


def test_benchmark_trains_resumes_and_searches(data_dir: Path, tmp_path: Path) -> None:
    """bench_nb201_supernet.py on tiny settings, run twice: the second resumes from its checkpoint."""
    argv = [sys.executable, str(REPO / "benchmarks" / "bench_nb201_supernet.py"), "--steps", "8",
            "--eval-every", "4", "--checkpoint-every", "4", "--cells", "6", "--valid-images", "64",
            "--bn-images", "32", "--search-budget", "6", "--search-images", "32", "--finalists", "2",
            "--resolution", "8", "--channels", "8", "--batch-size", "16", "--threads", "1",
            "--out", str(tmp_path)]  # fmt: skip
    first = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert re.search(r"seed 0 step      8 .* τ [+-]\d\.\d{3} \(accuracy\)  [+-]\d\.\d{3} \(loss\)", first)
    assert re.search(r"returned \|.*\| +\d+\.\d\d% \(rank \d+ of 15625\)", first)
    assert re.search(r"the search's own first \d+\.\d\d%, best of its 2 finalists \d+\.\d\d%", first)
    again = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert "seed 0: resumed at step 8" in again
    bad = subprocess.run([*argv[:2], "--agent", "exhaustiv"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--agent='exhaustiv' is not one of ['exhaustive', 'reinf" in bad.stderr
    assert "did you mean 'exhaustive'" in bad.stderr.lower()
    bad = subprocess.run([*argv[:2], "--cells", "1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--cells=1 must be in [2, 15625]" in bad.stderr
    bad = subprocess.run([*argv[:2], "--steps", "8", "--schedule-steps", "4"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--schedule-steps=4 must be >= --steps=8" in bad.stderr
    # the checkpoint was trained on a cosine over 8 steps: resuming it on another schedule would mix two
    other = subprocess.run([*argv, "--schedule-steps", "16"], capture_output=True, text=True)
    assert other.returncode == 1 and "was trained with --schedule-steps=8, not 16" in other.stderr
