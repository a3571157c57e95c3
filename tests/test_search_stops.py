"""How ``nas-search`` stops and starts: Ctrl-C, SIGTERM, --time-budget, --resume with nothing, bad data.

Each stop is one line on stderr saying what was kept and the exact command that continues; the
signals go to a real ``nas-search`` process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import synthetic  # noqa: F401  (registers NAS-Synthetic-v0)
from search_runs import REPO, read_csv

from nas_env.data import cifar
from scripts import search

ENV = "tests.synthetic:NAS-Synthetic-v0"


@pytest.fixture(autouse=True)
def _repo_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO))


def args(out: Path, budget: int = 40, *extra: str) -> list[str]:
    return ["--env", ENV, "--agent", "random", "--budget", str(budget), "--seed", "3", "--out", str(out),
            "--no-progress", *extra]  # fmt: skip


def start_and_signal(argv: list[str], out: Path, sig: int, rows: int = 5) -> subprocess.CompletedProcess[str]:
    """Start a real ``nas-search``, send ``sig`` once ``rows`` evaluations are written, wait for it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.search", *argv],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "config.json").is_file() and len(read_csv(out)) >= rows:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, sig)
    stdout, stderr = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.parametrize(
    ("sig", "status", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_a_signal_ends_with_one_line_and_resume_finishes_the_same_run(sig, status, word, tmp_path) -> None:
    reference, stopped = tmp_path / "reference", tmp_path / "stopped"
    assert search.main(args(reference)) == 0
    proc = start_and_signal([*args(stopped), "--env-kwargs", "delay_s=0.05"], stopped, sig)
    assert proc.returncode == status
    assert proc.stderr.count("\n") == 1, proc.stderr  # no traceback
    kept = json.loads((stopped / "best.json").read_text())
    assert kept["stopped"] == word and kept["num_evaluations"] >= 5
    line = proc.stderr.strip()
    assert line.startswith(f"nas-search: {word} after ") and "kept in" in line
    assert line.endswith(f"continue with: nas-search --out {stopped} --resume")
    assert search.main(["--out", str(stopped), "--resume"]) == 0
    key = [(r["index"], r["arch"], r["reward"]) for r in read_csv(reference)]
    assert [(r["index"], r["arch"], r["reward"]) for r in read_csv(stopped)] == key


def test_time_budget_stops_at_the_deadline_with_best_json_first(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    start = time.monotonic()
    argv = ["--env", ENV, "--agent", "evolution", "--time-budget", "2", "--out", str(out), "--no-progress",
            "--env-kwargs", "delay_s=0.05"]  # fmt: skip
    assert search.main(argv) == 0
    assert time.monotonic() - start < 10
    rows = read_csv(out)
    best = json.loads((out / "best.json").read_text())
    assert best["stopped"] == "time budget" and 5 <= best["num_evaluations"] == len(rows) < 200
    assert best["top"][0]["reward"] == max(float(r["reward"]) for r in rows)
    assert "time budget reached" in capsys.readouterr().out


def test_time_budget_with_successive_halving_returns_the_top_rung(tmp_path) -> None:
    out = tmp_path / "run"
    argv = ["--env", ENV, "--env-kwargs", "fidelity=low", "delay_s=0.02", "--agent", "random",
            "--promote", "high", "--promote-bracket", "6", "--time-budget", "2", "--out", str(out),
            "--no-progress"]  # fmt: skip
    assert search.main(argv) == 0
    best = json.loads((out / "best.json").read_text())
    rows = read_csv(out)
    promoted = [r for r in rows if r.get("rung") == "1"]
    assert promoted, "the run should reach a promotion within 2 s"
    assert best["top"][0]["arch"] in {r["arch"] for r in promoted}


def test_resume_with_nothing_to_resume_says_so(tmp_path, capsys) -> None:
    assert search.main(["--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "no run to resume in" in capsys.readouterr().err
    out = tmp_path / "run"
    proc = start_and_signal([*args(out, 2), "--env-kwargs", "delay_s=3"], out, signal.SIGINT, rows=0)
    assert proc.returncode == 130 and not (out / "checkpoint.pt").exists()
    assert search.main(["--out", str(out), "--resume"]) == 0
    assert "no checkpoint in" in capsys.readouterr().err.splitlines()[0]
    assert len(read_csv(out)) == 2


def test_missing_dataset_offline_is_one_line_before_any_child(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(cifar, "CIFAR_URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")  # nothing listens
    monkeypatch.setenv("NAS_ENV_DATA", str(tmp_path / "empty"))
    out = tmp_path / "run"
    argv = ["--env-kwargs", "fidelity=smoke", "--budget", "2", "--out", str(out), "--no-progress"]
    assert search.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nas-search: error: CIFAR-10 not found")
    assert "NAS_ENV_DATA" in err and "data_dir=" in err and "download=False" in err
    assert not out.exists()  # the store the env made is gone: the same command runs once data is there


def test_a_misspelt_env_key_is_named_as_the_key(tmp_path, capsys) -> None:
    assert search.main(["--env-kwargs", "num_layer=6", "--budget", "2", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("nas-search: error: --env-kwargs key='num_layer' is not allowed; expected one of [")
    assert err.rstrip().endswith("Did you mean 'num_layers'?")


def test_ctrl_c_to_the_whole_process_group_with_pool_workers_is_one_line(tmp_path) -> None:
    """A terminal's Ctrl-C reaches the workers too: they stay quiet and the parent says one line."""
    out = tmp_path / "run"
    argv = ["--env", ENV, "--agent", "reinforce", "--backend", "pool", "--agent-kwargs", "batch_size=2",
            "--budget", "40", "--env-kwargs", "delay_s=0.3", "--out", str(out), "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.search", *argv],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(read_csv(out)) < 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.count("\n") == 1, err
    assert err.endswith(f"continue with: nas-search --out {out} --resume\n")


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_before_the_first_child_is_one_line_too(sig, status, tmp_path) -> None:
    out = tmp_path / "run"
    proc = start_and_signal([*args(out, 2), "--env-kwargs", "delay_s=3"], out, sig, rows=0)
    assert proc.returncode == status and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.rstrip().endswith(f"nas-search --out {out} --resume")
