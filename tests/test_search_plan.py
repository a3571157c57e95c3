"""The plan ``nas-search`` prints before the first child, for every env whose children train.

Real searches of one ``smoke`` child on the real data under ``$NAS_ENV_DATA``; the calibration
cache is a folder of the test's own, so the reference children are timed as on a fresh clone.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest
from search_runs import read_csv

from nas_env.training import calibration
from scripts import search
from scripts._plan import Plan


@pytest.fixture(autouse=True)
def _cold_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(calibration.CACHE_ENV_VAR, str(tmp_path / "cache"))


def run_search(env: str, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, dict]:
    argv = ["--env", env, "--env-kwargs", "fidelity=smoke", "--agent", "random", "--budget", "1",
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert search.main(argv) == 0, capsys.readouterr().err
    return capsys.readouterr().out, json.loads((out / "best.json").read_text())


def plan_lines(printed: str) -> dict[str, str]:
    """The plan's lines by their first word (``reward:``, ``fidelity:``, ``ETA:``...)."""
    return {line.split()[0]: line.strip() for line in printed.splitlines() if line.startswith("  ")}


@pytest.mark.slow
def test_issue_23_ptb_search_states_its_recipe_and_eta_then_trains(tmp_path, capsys) -> None:
    """NAS-PTB-v0 printed no plan: its recipe has tokens, not images (KeyError 'train_images')."""
    printed, best = run_search("NAS-PTB-v0", tmp_path / "run", capsys)
    lines = plan_lines(printed)
    assert lines["fidelity:"].startswith(
        "fidelity: smoke (4,000 training tokens x 1 epoch, 2 layers x 32 units, 16 streams x 10 steps"
    )
    assert "perplexity is the last epoch's, on 2,000 validation tokens" in lines["reward:"]
    assert "c / val_perplexity**2" in lines["reward:"] and "``" not in lines["reward:"]
    assert lines["time"].startswith("time per child on this machine") and "over 3 random children" in printed
    assert "training steps of 16 streams x 10 random tokens per child" in printed and "timed now" in printed
    assert lines["ETA:"].startswith("ETA: ") and "for 1 children" in lines["ETA:"]
    assert lines["first"].startswith("first child trained in")
    assert best["fidelity"] == "smoke" and best["fidelity_recipe"]["train_tokens"] == 4000
    assert len(best["seconds_per_child_measured"]["reference_children"]) == 3
    [top] = best["top"]
    assert top["val_perplexity"] > 1 and '--space ptb --arch "' in top["retrain"]
    assert top["retrain"].endswith(f"--fidelity smoke --seed {top['seed']}")


@pytest.mark.slow
def test_nb201_trained_search_states_its_recipe(tmp_path, capsys) -> None:
    printed, best = run_search("NAS-Bench-201-v0", tmp_path / "run", capsys)
    lines = plan_lines(printed)
    assert lines["fidelity:"] == "fidelity: smoke (128 images x 1 epoch at 32x32), cpu, fp32"
    assert "best validation accuracy (on 128 images) of the last 1 epoch(s)" in lines["reward:"]
    assert "training steps of 4 random images per child" in printed and "ETA:" in lines
    assert 0 <= best["top"][0]["accuracy_percent"] <= 100 and best["fidelity"] == "smoke"


@pytest.mark.slow
def test_nb201_proxy_plan_times_its_reduced_network(data_dir) -> None:
    """The proxy's plan: its own recipe (6 epochs at 32x32), timed on the reduced network it trains."""
    env = gym.make("NAS-Bench-201-v0", fidelity="proxy", device="cpu")
    plan = Plan.of(env, "NAS-Bench-201-v0", {"fidelity": "proxy"}, "random")
    [_, _, fidelity] = plan.head(10, 0)
    assert fidelity.startswith("  fidelity: proxy (10,000 images x 6 epochs at 32x32), cpu, ")
    plan.measure()
    assert plan.calibration is not None and not plan.calibration.cached
    timing = plan.timing(10, 0, None)
    assert timing[0].startswith("  time per child on this machine") and timing[2].startswith("  ETA: ")
    again = Plan.of(env, "NAS-Bench-201-v0", {"fidelity": "proxy"}, "random")
    again.measure()
    assert again.calibration == plan.calibration and again.calibration is not None
    assert again.calibration.cached and "cached in" in again.timing(10, 0, None)[1]
    env.close()


@pytest.mark.parametrize(
    ("env", "env_kwargs", "extra", "expected"),
    [
        ("NAS-CIFAR10-v0", {"fidelity": "smoke"}, [], "pool"),
        ("NAS-PTB-v0", {"fidelity": "smoke"}, [], "pool"),
        ("NAS-CIFAR10-v0", {"fidelity": "smoke"}, ["--agent", "random"], "local"),
        ("NAS-CIFAR10-v0", {"fidelity": "smoke"}, ["--promote", "proxy"], "local"),
        ("NAS-CIFAR10-v0", {"fidelity": "zero_cost"}, [], "local"),
        ("NAS-CIFAR10-v0", {"weight_sharing": True}, [], "local"),
        ("NAS-Bench-201-v0", {}, [], "local"),
        ("NAS-CIFAR10-v0", {"fidelity": "smoke"}, ["--backend", "local"], "local"),
    ],
)
def test_backend_auto_uses_the_pool_only_where_children_train(env, env_kwargs, extra, expected, tmp_path):
    """``--backend auto``: worker processes for the controller's trained children on a multi-core
    CPU; this process for table or zero-cost rewards, shared weights and the other agents."""
    from nas_env.backends.threads import available_cpus

    if expected == "pool" and available_cpus() < 2:
        pytest.skip("one core: auto keeps children in this process")
    pairs = [f"{k}={v}" for k, v in env_kwargs.items()]
    argv = ["--env", env, "--env-kwargs", *pairs, "--budget", "2", "--out", str(tmp_path / "r"), *extra]
    config, made, _, agent = search.build(search.resolve_config(argv))
    assert config.backend == expected
    assert (type(agent).__name__ == "DistributedReinforceAgent") == (expected == "pool")
    agent.close()
    made.close()


@pytest.mark.slow
def test_the_default_search_trains_two_children_at_once_and_repeats_itself(tmp_path, capsys) -> None:
    """The README's main command on a 2-core CPU: 2 workers x 1 thread; the same seed gives the same
    architectures and rewards, in the same order, however the workers finish."""
    from nas_env.backends.threads import available_cpus

    if available_cpus() < 2:
        pytest.skip("one core: auto keeps children in this process")
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        argv = ["--env-kwargs", "fidelity=smoke", "num_layers=2", "max_layers=2", "--agent-kwargs",
                "batch_size=4", "--budget", "8", "--seed", "1", "--out", str(out),
                "--no-progress"]  # fmt: skip
        assert search.main(argv) == 0
        assert f"{min(available_cpus(), 4)} workers x 1 thread" in capsys.readouterr().out
        assert json.loads((out / "config.json").read_text())["search"]["backend"] == "pool"
        runs.append([(r["index"], r["arch"], r["reward"]) for r in read_csv(out)])
    assert runs[0] == runs[1] and len(runs[0]) == 8


def test_a_zero_cost_search_suggests_a_retrain_that_trains(tmp_path) -> None:
    """nas-retrain has no zero-cost mode: best.json's command trains the child at proxy."""
    out = tmp_path / "zc"
    argv = ["--env-kwargs", "fidelity=zero_cost", "zero_cost=params", "--agent", "random", "--budget", "2",
            "--seed", "0", "--out", str(out), "--no-progress"]  # fmt: skip
    assert search.main(argv) == 0
    best = json.loads((out / "best.json").read_text())
    assert best["fidelity"] == "zero_cost"
    for entry in best["top"]:
        expected = f'nas-retrain --arch "{entry["arch"]}" --fidelity proxy --seed {entry["seed"]}'
        assert entry["retrain"] == expected
