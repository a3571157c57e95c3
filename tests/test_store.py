"""Results store: shared between processes, nothing committed is lost to SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas_env.records import EvalResult
from nas_env.store import ResultsStore

WRITER = """
import sys, time
from nas_env.store import ResultsStore
from nas_env.records import EvalResult
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
from nas_env.records import EvalResult
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


# ---- claims: work in progress shared between processes ----------------------------------------------


def test_a_claim_makes_other_stores_wait_until_the_result_is_stored(tmp_path: Path) -> None:
    a, b = ResultsStore(tmp_path / "r.sqlite"), ResultsStore(tmp_path / "r.sqlite")
    assert a.claim("x", "fp") == "claimed"
    assert b.claim("x", "fp") == "busy"  # a is alive and training x
    assert a.claim("x", "fp") == "claimed"  # claiming again is harmless
    assert b.claim("x", "other-fidelity") == "claimed"  # claims are per fingerprint
    a.add("x", "fp", EvalResult("failed", error="nan loss", seed=1), 0.0)
    assert b.claim("x", "fp") == "busy"  # a failed attempt is not a result: a may retry
    a.add("x", "fp", EvalResult("ok", {"val_accuracy": 0.5}, seed=1), 0.5)
    assert b.claim("x", "fp") == "done"
    a.release("x", "fp")
    assert a.owner != b.owner and a.owner.split(":")[1] == str(os.getpid())


def test_a_released_claim_can_be_taken(tmp_path: Path) -> None:
    a, b = ResultsStore(tmp_path / "r.sqlite"), ResultsStore(tmp_path / "r.sqlite")
    assert a.claim("x", "fp") == "claimed"
    b.release("x", "fp")  # not b's claim: nothing happens
    assert b.claim("x", "fp") == "busy"
    a.release("x", "fp")
    assert b.claim("x", "fp") == "claimed" and a.claim("x", "fp") == "busy"


CLAIMER = """
import sys, time
from nas_env.store import ResultsStore
store = ResultsStore(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # all claim at the same moment
print(store.claim("x", "fp"), flush=True)
time.sleep(float(sys.argv[3]))  # hold the claim (alive) while the others look
"""


def test_of_processes_claiming_at_once_exactly_one_gets_it(tmp_path: Path) -> None:
    path = str(tmp_path / "r.sqlite")
    ResultsStore(path).conn  # noqa: B018 - create the file before the race
    start_at = str(time.time() + 3)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, path, start_at, "3"], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    states = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert states == ["busy", "busy", "busy", "claimed"]


def test_a_dead_or_expired_claim_is_taken_over(tmp_path: Path) -> None:
    path = str(tmp_path / "r.sqlite")
    proc = subprocess.run(
        [sys.executable, "-c", CLAIMER, path, "0", "0"], capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.strip() == "claimed"  # and the process has exited, holding it
    assert ResultsStore(path).claim("x", "fp") == "claimed"

    a, b = ResultsStore(path), ResultsStore(path, claim_ttl=0.05)
    assert a.claim("y", "fp") == "claimed"
    assert ResultsStore(path).claim("y", "fp") == "busy"
    time.sleep(0.1)
    assert b.claim("y", "fp") == "claimed"  # a is alive, but its claim is older than b's claim_ttl


def test_a_pickled_store_keeps_its_settings_and_gets_a_new_owner(tmp_path: Path) -> None:
    import pickle

    store = ResultsStore(tmp_path / "r.sqlite", claim_ttl=5.0)
    owner = store.owner
    copy = pickle.loads(pickle.dumps(store))
    assert copy.claim_ttl == 5.0 and copy.owner != owner and copy.path == store.path
    assert not ResultsStore().shared and copy.shared


def test_a_heartbeat_keeps_a_live_claim_past_its_ttl_and_stops_once_released(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    a, b = ResultsStore(path, claim_ttl=0.4), ResultsStore(path, claim_ttl=0.4)
    assert a.claim("x", "fp") == "claimed"
    time.sleep(1.2)  # three TTLs: alive only because a's thread renewed the claim every 0.1 s
    assert b.claim("x", "fp") == "busy"
    beat = a._heartbeat
    assert beat is not None and beat.is_alive()
    a.release("x", "fp")
    beat.join(timeout=5)
    assert not beat.is_alive() and beat.finished  # nothing left to renew
    assert a.claim("y", "fp") == "claimed" and a._heartbeat is not beat  # a new thread for new claims


def test_a_claim_from_another_host_lasts_as_long_as_its_heartbeat(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r.sqlite", claim_ttl=60.0)
    insert = "INSERT INTO claims (arch, fingerprint, owner, heartbeat) VALUES (?, 'fp', 'node-7:1:ab', ?)"
    store.conn.execute(insert, ("fresh", time.time() - 30))
    store.conn.execute(insert, ("stale", time.time() - 90))  # that machine stopped renewing it
    assert store.claim("fresh", "fp") == "busy" and store.claim("stale", "fp") == "claimed"
    with pytest.raises(ValueError, match="claim_ttl=0"):
        ResultsStore(claim_ttl=0)


def test_an_in_memory_store_claims_for_free(tmp_path: Path) -> None:
    store = ResultsStore()  # private to this object: nobody to wait for
    assert store.claim("x", "fp") == "claimed" and store.claim("x", "fp") == "claimed"
    store.release("x", "fp")
    assert store.conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0 and store._heartbeat is None
