"""The README cannot go stale: its Python snippet, its set-up command and its command lines run here.

The first snippet runs as written. The set-up's main command runs verbatim until its plan and ETA
are printed, then gets Ctrl-C. The other ``nas-*`` command lines run with tiny budgets (``--budget
2``, ``--seeds 2``, the ``smoke`` fidelity, outputs under a temporary folder).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
SCRIPTS = {
    "nas-search": "scripts.search",
    "nas-benchmark": "scripts.benchmark",
    "nas-retrain": "scripts.retrain",
}
TINY = [
    (r"--budget \d+", "--budget 2"),
    (r"--seeds \d+", "--seeds 2"),
    (r"fidelity=proxy", "fidelity=smoke"),
    (r"--fidelity paper", "--fidelity smoke"),
    (r"batch_size=\d+", "batch_size=2"),
]


def blocks(language: str) -> list[str]:
    """The README's fenced code blocks of ``language``."""
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def command_lines() -> list[str]:
    """Every ``nas-*`` command of the bash blocks (continuations joined, ``VAR=...`` prefixes dropped)."""
    out = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part.split("#")[0])
                while words and "=" in words[0] and not words[0].startswith("-"):
                    words = words[1:]
                if words and words[0] in SCRIPTS:
                    out.append(shlex.join(words))
    return out


def run_command(command: str, tmp: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    for pattern, tiny in TINY:
        command = re.sub(pattern, tiny, command)
    command = re.sub(r"--out (\S+)", lambda m: f"--out {tmp / Path(m.group(1)).name}", command)
    words = shlex.split(command)
    argv = [sys.executable, "-m", SCRIPTS[words[0]], *words[1:]]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_the_first_snippet_runs_as_written() -> None:
    [snippet, *_] = blocks("python")
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", snippet], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    arch, accuracy, reward = proc.stdout.rsplit(" ", 2)
    assert "|" in arch and 0 <= float(accuracy) <= 1 and float(reward) == pytest.approx(float(accuracy) ** 3)
    assert time.monotonic() - start < 300


@pytest.mark.slow
def test_the_setup_command_prints_its_plan_and_eta_then_stops_cleanly(tmp_path: Path) -> None:
    [setup] = [b for b in blocks("bash") if "bash .ci/run" in b]
    [main] = [line for line in command_lines() if line in setup.replace("\\\n", " ")]
    words = shlex.split(main)
    out_index = words.index("--out") + 1
    words[out_index] = str(tmp_path / "run")
    argv = [sys.executable, "-m", SCRIPTS[words[0]], *words[1:]]
    env = {**os.environ, "NAS_ENV_CACHE": str(tmp_path / "cache")}  # a cold calibration, as on a fresh clone
    proc = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if line.strip().startswith("ETA:"):
            break
    plan = "".join(lines)
    assert "reward: The paper's CNN reward" in plan and "fidelity: proxy (10,000 images x 5 epochs" in plan
    assert "time per child on this machine" in plan and "200 children" in plan
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.count("\n") == 1, err
    assert f"nas-search --out {tmp_path / 'run'} --resume" in err


def test_every_command_line_is_found() -> None:
    commands = command_lines()
    assert sum(c.startswith("nas-search") for c in commands) >= 4
    assert any(c.startswith("nas-benchmark") for c in commands) and any(
        c.startswith("nas-retrain") for c in commands
    )


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in command_lines() if "--resume" not in c])
def test_each_command_line_runs_with_a_tiny_budget(command: str, tmp_path: Path) -> None:
    if command.startswith("nas-search") and "--budget 200" in command:
        pytest.skip("the set-up command: run by test_the_setup_command_prints_its_plan_and_eta")
    proc = run_command(command, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if command.startswith("nas-search"):
        out = tmp_path / Path(shlex.split(command)[shlex.split(command).index("--out") + 1]).name
        assert (out / "best.json").is_file()
        resumed = run_command(f"nas-search --out {out} --resume --budget 3", tmp_path)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
