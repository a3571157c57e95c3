"""Random search, regularized evolution and the shared agent interface (agents/base.py, baselines.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from synthetic import make_synthetic_env

from agents import AGENT_NAMES, Evaluation, make_agent
from agents.baselines import EvolutionConfig, RegularizedEvolutionAgent
from nas_env.search_spaces.cnn import CnnSearchSpace


def rewards(history) -> np.ndarray:
    return np.array([e.reward for e in history])


def test_agent_names() -> None:
    assert AGENT_NAMES[:9] == (
        "reinforce",
        "random",
        "evolution",
        "ppo",
        "a2c",
        "dqn",
        "maskable_ppo",
        "reinforce_nb201",
        "local_search",
    )


def test_unknown_agent_suggests_the_closest() -> None:
    with pytest.raises(ValueError, match=re.escape("unknown agent 'evolutoin'")) as info:
        make_agent("evolutoin", make_synthetic_env())
    assert "Did you mean 'evolution'?" in str(info.value)


@pytest.mark.parametrize("budget", [0, -3, 2.5, True])
def test_budget_must_be_positive(budget) -> None:
    with pytest.raises(ValueError, match="must be a positive integer"):
        make_agent("random", make_synthetic_env()).search(budget)


def test_random_search_records_every_evaluation_in_order() -> None:
    seen = []
    env = make_synthetic_env()
    history = make_agent("random", env, seed=0).search(30, callback=seen.append)
    assert seen == history and [e.index for e in history] == list(range(30))
    e = history[0]
    assert isinstance(e, Evaluation) and e.info["arch"] == e.arch and e.reward == e.info["val_accuracy"]
    assert "action_mask" not in e.info
    # every reward came from the env: its results store holds each distinct architecture once
    assert len(env.unwrapped.evaluation.store) == len({h.arch for h in history})


def test_random_search_is_uniform() -> None:
    history = make_agent("random", make_synthetic_env(num_layers=1), seed=0).search(800)
    heights = [int(e.arch.split("x")[0]) for e in history]
    counts = np.array([heights.count(h) for h in (1, 3, 5, 7)])
    assert counts.min() > 150 and counts.max() < 250


def test_mutation_changes_exactly_one_token() -> None:
    agent = RegularizedEvolutionAgent(make_synthetic_env(), seed=0)
    sched = CnnSearchSpace(num_layers=3).schedule()
    rng = np.random.default_rng(0)
    for _ in range(200):
        parent = CnnSearchSpace(num_layers=3).sample(rng)
        child = agent.mutate(parent, sched)
        diff = [i for i, (a, b) in enumerate(zip(parent, child, strict=True)) if a != b]
        assert len(diff) == 1 and 0 <= child[diff[0]] < sched[diff[0]].num_choices


def test_evolution_population_ages() -> None:
    agent = make_agent("evolution", make_synthetic_env(), seed=0, population_size=5, tournament_size=2)
    history = agent.search(12)
    assert len(agent.population) == 5
    assert [r for _, r in agent.population] == [e.reward for e in history[-5:]]  # the 5 youngest


def test_evolution_config_is_checked() -> None:
    with pytest.raises(ValueError, match=re.escape("tournament_size=30 must be in [1, population_size=20]")):
        EvolutionConfig(population_size=20, tournament_size=30)


def test_evolution_learns_and_beats_random_search() -> None:
    """Regularized evolution climbs from ~0.45 to ~0.8 in 400 samples; random search stays at ~0.32.

    Margins of 0.15 (improvement) and 0.1 (over random) on each of 3 seeds.
    """
    for seed in range(3):
        evolution = make_agent(
            "evolution", make_synthetic_env(), seed=seed, population_size=20, tournament_size=5
        )
        ev = rewards(evolution.search(400))
        rs = rewards(make_agent("random", make_synthetic_env(), seed=seed).search(400))
        n = len(ev) // 5
        assert ev[-n:].mean() > ev[:n].mean() + 0.15, (seed, ev[:n].mean(), ev[-n:].mean())
        assert ev.mean() > rs.mean() + 0.1, (seed, ev.mean(), rs.mean())


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("reinforce", {}), ("random", {}), ("evolution", {"population_size": 6, "tournament_size": 3})],
)
def test_save_load_continues_exactly(name, kwargs, tmp_path) -> None:
    """Stopping at 20 (mid-batch for reinforce), saving, and loading into a fresh agent = one run of 44."""
    whole = make_agent(name, make_synthetic_env(), seed=7, **kwargs).search(44)
    first = make_agent(name, make_synthetic_env(), seed=7, **kwargs)
    first.search(20)
    first.save(tmp_path / "ck.pt")
    assert torch.load(tmp_path / "ck.pt", weights_only=True)["history"][19][0] == 19
    second = make_agent(name, make_synthetic_env(), seed=7, **kwargs)
    second.load(tmp_path / "ck.pt")
    resumed = second.search(44)
    assert [(e.arch, e.reward) for e in resumed] == [(e.arch, e.reward) for e in whole]
