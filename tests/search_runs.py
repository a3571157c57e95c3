"""Helpers for tests of ``nas-search`` run directories: read ``evaluations.csv``, kill a run midway."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def read_csv(out: Path) -> list[dict[str, str]]:
    """The rows of ``out/evaluations.csv`` (none while the run has not written it)."""
    if not (out / "evaluations.csv").is_file():
        return []
    with (out / "evaluations.csv").open() as f:
        return list(csv.DictReader(f))


def kill_search_midway(
    argv: Sequence[str], out: Path, rows: int, env: dict[str, str] | None = None, timeout: float = 120
) -> int:
    """Run ``python -m scripts.search ARGV`` (writing to ``out``), SIGKILL it once ``rows`` are written.

    Returns:
        The rows in ``evaluations.csv`` after the kill.

    Raises:
        AssertionError: The run ended (or failed) before writing ``rows`` rows.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.search", *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if len(read_csv(out)) >= rows:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return len(read_csv(out))
