"""Successive halving (agents/halving.py): promotions, every rung in the store, resume, errors."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import synthetic  # registers NAS-Synthetic-v0
from search_runs import kill_search_midway, read_csv

import nas_env  # noqa: F401
from agents import make_agent
from agents.halving import HalvingConfig, SuccessiveHalvingAgent
from nas_env.evaluators.nb201_synthetic import write_nb201_table
from nas_env.evaluators.tabular import TabularEvaluator
from nas_env.search_spaces.nb201 import NB201Architecture
from scripts import search

REPO = Path(__file__).resolve().parents[1]
SYNTH = "tests.synthetic:NAS-Synthetic-v0"


@pytest.fixture(autouse=True)
def _repo_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO))


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_nb201_table(tmp_path_factory.mktemp("nb201") / "table.csv"))


def test_promotes_the_best_of_each_bracket_on_the_table(table: str, tmp_path: Path) -> None:
    """Bracket of 9 at the 12-epoch column, best 3 re-scored at the 200-epoch validation column.

    Each promoted set is exactly the top 3 distinct rung-0 architectures of its bracket, each
    promoted reward is the table's 200-epoch value, and both fidelities land in the one store.
    """
    store = tmp_path / "s.sqlite"
    env = gym.make("NAS-Bench-201-v0", table_path=table, cache_path=str(store))
    agent = make_agent("halving", env, seed=3, rungs=("cifar10_valid_acc_200ep",), eta=3, bracket=9)
    history = agent.search(24)
    assert [e.index for e in history] == list(range(24))
    rungs = [e.info["rung"] for e in history]
    assert rungs == [0] * 9 + [1] * 3 + [0] * 9 + [1] * 3
    low, high = TabularEvaluator(table), TabularEvaluator(table, reward_metric="cifar10_valid_acc_200ep")
    for start in (0, 12):
        base = history[start : start + 9]
        for e in base:  # simulated cost: the table's 12-epoch training seconds
            assert e.info["train_seconds"] == pytest.approx(low.lookup(NB201Architecture.from_str(e.arch))[2])
        best: dict[str, float] = {}
        for e in base:
            best[e.arch] = max(best.get(e.arch, -1.0), e.reward)
        top3 = sorted(best, key=lambda a: -best[a])[:3]
        promoted = history[start + 9 : start + 12]
        assert [e.arch for e in promoted] == top3
        for e in promoted:
            assert e.info["fidelity"] == "cifar10_valid_acc_200ep"
            _, _, seconds_200 = high.lookup(NB201Architecture.from_str(e.arch))
            assert e.reward == pytest.approx(high.lookup(NB201Architecture.from_str(e.arch))[0])
            assert e.info["train_seconds"] == pytest.approx(seconds_200) and seconds_200 > 0
    best_e = agent.best()
    assert best_e.info["rung"] == 1
    assert best_e.reward == max(e.reward for e in history if e.info["rung"] == 1)
    env.close()
    agent.close()
    with sqlite3.connect(store) as db:
        counts = dict(db.execute("SELECT fingerprint, COUNT(*) FROM evaluations GROUP BY fingerprint"))
    assert len(counts) == 2 and sorted(counts.values()) == sorted(
        [len({e.arch for e in history if e.info["rung"] == r}) for r in (0, 1)]
    )


def test_three_rungs_and_the_budget_counts_every_evaluation() -> None:
    """low -> mid -> high with eta 3 and brackets of 9: 9 + 3 + 1 evaluations per bracket."""
    env = gym.make("NAS-Synthetic-v0", fidelity="low")
    agent = make_agent("halving", env, seed=0, rungs=("mid", "high"), bracket=9)
    history = agent.search(30)
    assert len(history) == 30
    assert [e.info["rung"] for e in history[:13]] == [0] * 9 + [1] * 3 + [2]
    assert [e.info["rung"] for e in history[13:26]] == [0] * 9 + [1] * 3 + [2]
    assert [e.info["rung"] for e in history[26:]] == [0] * 4  # a bracket in progress
    assert agent.base_budget(30) == len(agent.base.history) == 22
    assert agent.best().info["rung"] == 2


def test_promotion_finds_better_architectures_than_its_base_alone() -> None:
    """On the synthetic env rung 0 is noisy (sd 0.15) and rung 1 exact; halving around random search
    reports, at equal total evaluations, a better true score than random search picking by the noisy
    reward: promotion re-ranks the noisy winners. 20 seeds, so the margin is not luck."""
    exact = synthetic.MatchEvaluator(fidelity="high")
    space = gym.make("NAS-Synthetic-v0").unwrapped.space
    gains = []
    for seed in range(20):
        env = gym.make("NAS-Synthetic-v0", fidelity="low")
        sh = make_agent("halving", env, seed=seed, rungs=("high",), bracket=9)
        sh.search(48)
        rs = make_agent("random", gym.make("NAS-Synthetic-v0", fidelity="low"), seed=seed)
        rs.search(48)
        gains.append(exact.score(space.parse(sh.best().arch)) - exact.score(space.parse(rs.best().arch)))
    assert np.mean(gains) > 0.02 and np.mean(np.asarray(gains) >= 0) >= 0.6


def test_nas_search_promote_and_resume_after_sigkill(tmp_path: Path) -> None:
    """``nas-search --promote``: kill a real process mid-run, resume, compare with an uninterrupted run."""

    def cli(out: Path, *extra: str) -> list[str]:
        return ["--env", SYNTH, "--agent", "evolution", "--budget", "40", "--seed", "2", "--out", str(out),
                "--no-progress", "--promote", "mid,high", "--promote-bracket", "9",
                "--agent-kwargs", "population_size=6", "tournament_size=2", *extra]  # fmt: skip

    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert search.main(cli(reference, "--env-kwargs", "fidelity=low")) == 0
    argv = cli(killed, "--env-kwargs", "fidelity=low", "delay_s=0.05")
    assert 11 <= kill_search_midway(argv, killed, 11) < 40  # killed inside a promotion
    assert search.main(["--out", str(killed), "--resume"]) == 0
    key = [(r["index"], r["arch"], r["reward"], r["rung"]) for r in read_csv(reference)]
    assert [(r["index"], r["arch"], r["reward"], r["rung"]) for r in read_csv(killed)] == key
    best = json.loads((reference / "best.json").read_text())["top"]
    assert best[0]["rung"] == 2 and best[0]["fidelity"] == "high"
    with sqlite3.connect(killed / "results.sqlite") as db:  # nothing done before the kill was redone
        n = db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
        distinct = db.execute(
            "SELECT COUNT(*) FROM (SELECT DISTINCT arch, fingerprint FROM evaluations)"
        ).fetchone()[0]
    assert n == distinct


@pytest.mark.slow
def test_cifar_env_promotes_from_smoke_to_proxy(data_dir: Path) -> None:
    """The real CIFAR env: 1-layer children at smoke, the best one retrained at the proxy preset."""
    env = gym.make("NAS-CIFAR10-v0", num_layers=1, max_layers=1, fidelity="smoke", reward="accuracy")
    agent = make_agent("halving", env, seed=0, rungs=("proxy",), eta=3, bracket=3)
    history = agent.search(4)
    assert [e.info["rung"] for e in history] == [0, 0, 0, 1]
    top = max(history[:3], key=lambda e: e.reward)
    assert history[3].arch == top.arch and history[3].info["fidelity"] == "proxy"
    assert 0.1 < history[3].info["val_accuracy"] <= 1 and not history[3].info["cached"]
    agent.close()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "rungs=() must be a non-empty sequence"),
        ({"rungs": "high"}, "rungs='high' must be a non-empty sequence"),
        ({"rungs": ("high",), "eta": 1}, "eta=1 must be an integer >= 2"),
        ({"rungs": ("high",), "bracket": 2}, "bracket=2 must be an integer >= eta=3"),
        ({"rungs": ("high",), "base": "halving"}, "base='halving'"),
        ({"rungs": ("high",), "bracket_size": 9}, "unknown setting 'bracket_size'"),
    ],
)
def test_bad_settings(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        make_agent("halving", gym.make("NAS-Synthetic-v0"), **settings)


def test_bad_rung_and_env_errors(table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = gym.make("NAS-Synthetic-v0", fidelity="low")
    with pytest.raises(ValueError, match=r"fidelity='best'; expected one of \['high', 'low', 'mid'\]"):
        make_agent("halving", env, rungs=("best",), bracket=3)
    bad = tmp_path / "bad"
    env_args = ["--env", "NAS-Bench-201-v0", "--env-kwargs", f"table_path={table}"]
    code = search.main(
        [*env_args, "--budget", "9", "--out", str(bad), "--promote", "cifar10_valid_acc_300ep"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "cifar10_valid_acc_300ep" in err
    vec = gym.make_vec("NAS-Synthetic-v0", num_envs=2, vectorization_mode="sync")
    with pytest.raises(ValueError, match=r"needs a single env made with gym\.make"):
        SuccessiveHalvingAgent(vec, rungs=("high",))
    out = tmp_path / "run"
    code = search.main(["--env", SYNTH, "--agent", "reinforce", "--budget", "9", "--out", str(out),
                        "--promote", "high", "--replicas", "2"])  # fmt: skip
    assert code == 2 and "--promote runs one env" in capsys.readouterr().err
    assert HalvingConfig(rungs=("a", "b"), eta=2, bracket=8).promotions() == [4, 2]


def test_nas_benchmark_promote_wraps_every_policy(table: str, tmp_path: Path) -> None:
    """``nas-benchmark --promote``: runs labelled POLICY+sh, the best-so-far ranked by rung first."""
    from scripts.benchmark import main as benchmark

    out = tmp_path / "bench"
    argv = ["--env", "NAS-Bench-201-v0", "--env-kwargs", f"table_path={table}", "--seeds", "2",
            "--policies", "random,evolution", "--budget", "24", "--promote", "cifar10_valid_acc_200ep",
            "--workers", "1", "--no-progress", "--out", str(out)]  # fmt: skip
    assert benchmark(argv) == 0
    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert {r["policy"] for r in rows} == {"random+sh", "evolution+sh"} and len(rows) == 2 * 2 * 24
    for policy in ("random+sh", "evolution+sh"):
        run = [r for r in rows if r["policy"] == policy and r["seed"] == "0"]
        promoted = [float(r["reward"]) for r in run[9:12] + run[21:24]]
        assert float(run[-1]["best_reward"]) == max(promoted)
        assert float(run[11]["best_reward"]) == max(promoted[:3])  # a promoted score replaces rung 0's
    assert "random+sh" in (out / "summary.md").read_text()


def test_nas_benchmark_promote_under_a_time_budget(table: str, tmp_path: Path) -> None:
    """``--time-budget`` with ``--promote``: promoted children cost the table's 200-epoch seconds.

    The 200-epoch rung costs ~200/12 times a 12-epoch child, so a budget fills with far fewer
    architectures than without promotion, and the run stops before it is overspent.
    """
    from scripts.benchmark import main as benchmark

    budget = 40_000.0
    rows = {}
    for name, extra in (("plain", []), ("sh", ["--promote", "cifar10_valid_acc_200ep"])):
        out = tmp_path / name
        argv = ["--env", "NAS-Bench-201-v0", "--env-kwargs", f"table_path={table}", "--seeds", "1",
                "--policies", "random", "--time-budget", str(budget), "--workers", "1", "--no-progress",
                "--out", str(out), *extra]  # fmt: skip
        assert benchmark(argv) == 0
        rows[name] = list(csv.DictReader((out / "runs.csv").open()))
    low = TabularEvaluator(table)
    high = TabularEvaluator(table, reward_metric="cifar10_valid_acc_200ep")
    sh = rows["sh"]
    assert 0 < float(sh[-1]["total_train_seconds"]) <= budget
    for i, row in enumerate(sh):
        rung_evaluator = high if i % 12 >= 9 else low  # brackets of 9, then the best 3 promoted
        expected = rung_evaluator.lookup(NB201Architecture.from_str(row["arch"]))[2]
        assert float(row["train_seconds"]) == pytest.approx(expected)
    assert len(sh) < len(rows["plain"])
