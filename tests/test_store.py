"""Results store: shared between processes, nothing committed is lost to SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from nas_env.store import ResultsStore
from nas_env.type_aliases import EvalResult

WRITER = """
import sys, time
from nas_env.store import ResultsStore
from nas_env.type_aliases import EvalResult
store = ResultsStore(sys.argv[1])
i = 0
while True:
    store.add(f"arch-{i}", "fp", EvalResult("ok", {"val_accuracy": i / 1e6}, 10, 0.1, seed=i), i / 1e6)
    print(i, flush=True)  # printed only after the row is committed
    i += 1
"""


def test_sigkilled_writer_loses_no_committed_row(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    committed = -1
    deadline = time.monotonic() + 60
    while committed < 200 and time.monotonic() < deadline:
        committed = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert committed >= 200
    store = ResultsStore(path)
    rows = store.rows()
    archs = {row["arch"] for row in rows}
    assert {f"arch-{i}" for i in range(committed + 1)} <= archs
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    hit = store.lookup("arch-7", "fp")
    assert hit is not None and hit[0].seed == 7 and hit[1] == 7e-6


def test_two_stores_share_one_file_and_failed_rows_are_not_cache_hits(tmp_path: Path) -> None:
    a, b = ResultsStore(tmp_path / "r.sqlite"), ResultsStore(tmp_path / "r.sqlite")
    a.add("x", "fp", EvalResult("failed", error="boom", seed=1), 0.0)
    assert b.lookup("x", "fp") is None  # a failure is recorded but retried
    a.add("x", "fp", EvalResult("ok", {"val_accuracy": 0.5}, seed=2), 0.125)
    result, reward = b.lookup("x", "fp")  # type: ignore[misc]
    assert result.metrics == {"val_accuracy": 0.5} and reward == 0.125
    assert b.lookup("x", "other-fidelity") is None
    assert [r["status"] for r in b.rows()] == ["failed", "ok"] and len(b) == 2


OPENER = """
import sys, time
from nas_env.store import ResultsStore
from nas_env.type_aliases import EvalResult
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))  # all open the new file at the same moment
store = ResultsStore(sys.argv[1])
for i in range(20):
    store.add(f"{sys.argv[2]}-{i}", "fp", EvalResult("ok", {}, seed=i), 0.0)
    store.lookup(f"{sys.argv[2]}-{i}", "fp")
"""


def test_processes_opening_a_fresh_store_together_all_succeed(tmp_path: Path) -> None:
    """Regression: switching a new file to WAL raced ('database is locked') in SubprocVecEnv workers."""
    for trial in range(3):
        path = tmp_path / f"fresh-{trial}.sqlite"
        start_at = str(time.time() + 3)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPENER, str(path), f"w{k}", start_at],
                stderr=subprocess.PIPE,
                text=True,
            )
            for k in range(6)
        ]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert all(p.returncode == 0 for p in procs), errors
        assert len(ResultsStore(path)) == 6 * 20
