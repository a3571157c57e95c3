"""The ``nas-search`` command (scripts/search.py): outputs, bad arguments, resume after SIGKILL."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import synthetic  # noqa: F401  (registers NAS-Synthetic-v0)
import torch
from search_runs import kill_search_midway, read_csv

from scripts import search
from scripts._cli import field_docs, parse_key_values

REPO = Path(__file__).resolve().parents[1]
ENV = "tests.synthetic:NAS-Synthetic-v0"


@pytest.fixture(autouse=True)
def _repo_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO))  # `tests.synthetic` importable, as from the repo root


def args(out: Path, agent: str = "random", budget: int = 30, *extra: str) -> list[str]:
    return ["--env", ENV, "--agent", agent, "--budget", str(budget), "--seed", "5", "--out", str(out),
            "--no-progress", *extra]  # fmt: skip


def test_outputs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert (
        search.main(args(out, "evolution", 30, "--agent-kwargs", "population_size=8", "tournament_size=3"))
        == 0
    )
    rows = read_csv(out)
    assert [int(r["index"]) for r in rows] == list(range(30))
    assert {"arch", "reward", "val_accuracy", "cached", "num_params"} <= set(rows[0])
    best = json.loads((out / "best.json").read_text())
    top = best["top"]
    assert best["num_evaluations"] == 30 and top[0]["reward"] == max(float(r["reward"]) for r in rows)
    assert [t["reward"] for t in top] == sorted((t["reward"] for t in top), reverse=True)
    assert len({t["arch"] for t in top}) == len(top) == 10
    seed = top[0]["seed"]
    assert top[0]["retrain"] == f'nas-retrain --arch "{top[0]["arch"]}" --fidelity high --seed {seed}'
    assert best["reward_definition"] == "The validation accuracy itself, in [0, 1]."
    assert best["fidelity"] == "high" and best["stopped"] == "budget"
    assert top[0]["accuracy_percent"] == round(100 * top[0]["val_accuracy"], 2)
    config = json.loads((out / "config.json").read_text())
    assert config["search"]["agent"] == "evolution" and config["search"]["budget"] == 30
    assert config["agent_config"] == {"population_size": 8, "tournament_size": 3}
    assert config["env_kwargs_resolved"]["cache_path"] == str(out / "results.sqlite")
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert len(state["history"]) == 30
    with sqlite3.connect(out / "results.sqlite") as db:  # each distinct architecture evaluated once
        archs = [a for (a,) in db.execute("SELECT arch FROM evaluations")]
    assert sorted(archs) == sorted({r["arch"] for r in rows})


def test_help_comes_from_the_field_docstrings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        search.main(["--help"])
    text = capsys.readouterr().out
    assert "--agent-kwargs [KEY=VALUE ...]" in text and "Architectures to evaluate in total" in text
    assert field_docs(search.SearchConfig)["seed"] == "Root seed of the agent and the env."
    assert parse_key_values(["a=1", "b=x", "c=(1, 2)", "d=None"]) == {
        "a": 1,
        "b": "x",
        "c": (1, 2),
        "d": None,
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--agent", "reinfroce"], "Did you mean 'reinforce'?"),
        (["--env", "NAS-Nope-v0"], "--env 'NAS-Nope-v0': Environment `NAS-Nope` doesn't exist"),
        (["--env-kwargs", "num_layer=2"], "Did you mean 'num_layers'?"),
        (["--env-kwargs", "num_layers=99"], "num_layers=99 is out of range"),
        (["--budget", "0"], "--budget 0 must be a positive number of architectures"),
        (["--agent-kwargs", "lr=0.1"], "unknown setting 'lr' for agent 'reinforce'"),
        (["--agent", "ppo", "--agent-kwargs", "n_step=8"], "Did you mean 'n_steps'?"),
        (["--budget", "ten"], "argument --budget: invalid int value: 'ten'"),
        (["--agent-kwargs", "oops"], "expected KEY=VALUE, got 'oops'"),
    ],
)
def test_bad_arguments_stop_with_one_line_before_any_work(argv, message, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    base = ["--env", ENV, "--agent", "reinforce", "--budget", "5", "--out", str(out), "--no-progress"]
    try:
        status = search.main(base + argv)
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2
    assert message in err and err.count("\n") == 1 and err.startswith("nas-search: error: ")
    assert not out.exists()


def test_a_directory_with_a_run_needs_resume(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert search.main(args(out, "random", 5)) == 0
    before = (out / "evaluations.csv").read_text()
    assert search.main(args(out, "random", 5)) == 2
    assert "already holds a run; add --resume" in capsys.readouterr().err
    assert search.main(["--out", str(tmp_path / "empty"), "--resume"]) == 2
    assert "no run to resume" in capsys.readouterr().err
    assert search.main(["--out", str(out), "--resume", "--seed", "6"]) == 2
    assert "--seed 6 differs from the saved run's 5" in capsys.readouterr().err
    assert (out / "evaluations.csv").read_text() == before


def test_resume_extends_the_budget_exactly(tmp_path: Path) -> None:
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert search.main(args(whole, "reinforce", 44)) == 0
    assert search.main(args(part, "reinforce", 20)) == 0
    assert search.main(["--out", str(part), "--resume", "--budget", "44", "--no-progress"]) == 0
    key = [(r["index"], r["arch"], r["reward"]) for r in read_csv(whole)]
    assert [(r["index"], r["arch"], r["reward"]) for r in read_csv(part)] == key


def test_sb3_agent_resumes_from_its_model(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert search.main(args(out, "ppo", 6, "--agent-kwargs", "n_steps=32", "batch_size=16")) == 0
    first = read_csv(out)
    assert (out / "checkpoint.zip").is_file()
    assert search.main(["--out", str(out), "--resume", "--budget", "12", "--no-progress"]) == 0
    rows = read_csv(out)
    assert len(rows) == 12 and rows[:6] == first


@pytest.mark.parametrize(
    ("agent", "extra"),
    [
        ("reinforce", ()),
        ("random", ()),
        ("evolution", ("--agent-kwargs", "population_size=10", "tournament_size=4")),
    ],
)
def test_resume_after_sigkill_repeats_the_uninterrupted_run(agent, extra, tmp_path) -> None:
    """Kill a real ``nas-search`` process mid-run, resume it, and compare with an uninterrupted run.

    Exactly the same architectures and rewards, in the same order; and no evaluation that had
    completed before the kill is trained again (the store holds each architecture once).
    """
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert search.main(args(reference, agent, 40, *extra)) == 0
    argv = [*args(killed, agent, 40, *extra), "--env-kwargs", "delay_s=0.05"]
    done_at_kill = kill_search_midway(argv, killed, 13)
    assert 13 <= done_at_kill < 40
    assert search.main(["--out", str(killed), "--resume"]) == 0
    key = [(r["index"], r["arch"], r["reward"]) for r in read_csv(reference)]
    assert [(r["index"], r["arch"], r["reward"]) for r in read_csv(killed)] == key
    with sqlite3.connect(killed / "results.sqlite") as db:
        archs = [a for (a,) in db.execute("SELECT arch FROM evaluations")]
    assert len(archs) == len(set(archs)) == len({a for _, a, _ in key})
