"""The results store: every evaluation in SQLite, and the cache built on it.

One row per evaluation (architecture, evaluator fingerprint, seed, status, reward, metrics,
parameters, seconds, error). Each row is committed on its own, in WAL mode, so a process killed
with SIGKILL loses no committed evaluation and leaves the file readable, and several processes can
share one file (SQLite's locking; writers wait up to ``timeout`` seconds).

The cache is keyed by ``(arch, fingerprint)``: the same architecture at the same fidelity is
trained once and then looked up. Processes sharing a file also share the work in progress: before
training a missing architecture a process claims it (:meth:`~ResultsStore.claim`), and another
process that draws it meanwhile waits for that result instead of training it a second time. A
claim whose process has died, or whose heartbeat is older than ``claim_ttl``, is taken over, so a
killed worker (or a lost machine) never blocks the others for long.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from nas_env.records import EvalResult

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    arch TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    reward REAL,
    metrics TEXT NOT NULL,
    num_params INTEGER NOT NULL,
    cost_s REAL NOT NULL,
    error TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS evaluations_key ON evaluations (arch, fingerprint);
CREATE TABLE IF NOT EXISTS claims (
    arch TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    owner TEXT NOT NULL,
    heartbeat REAL NOT NULL,
    PRIMARY KEY (arch, fingerprint)
);
"""

ClaimState = Literal["claimed", "busy", "done"]
"""What :meth:`ResultsStore.claim` found: ``"claimed"`` (train it), ``"busy"`` (another live process
trains it: wait), ``"done"`` (a successful evaluation is stored: look it up)."""

_HOST = socket.gethostname()


class ResultsStore:
    """SQLite results store and evaluation cache.

    Args:
        path: Database file; ``None`` or ``":memory:"`` keeps it in memory for this object only.
        timeout: Seconds a writer waits for another process's lock.
        claim_ttl: Seconds without a heartbeat after which a claim counts as abandoned, even when
            its process cannot be seen to have died (it ran on another host). While this store
            holds claims, a background thread renews them every ``claim_ttl / 4`` seconds.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        timeout: float = 60.0,
        claim_ttl: float = 120.0,
    ) -> None:
        """Open (creating if needed) the database."""
        self.path = ":memory:" if path in (None, ":memory:") else str(Path(path).expanduser())
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._timeout = timeout
        if not claim_ttl > 0:
            raise ValueError(f"claim_ttl={claim_ttl!r} must be a positive number of seconds")
        self.claim_ttl = claim_ttl
        self._heartbeat: _Heartbeat | None = None
        self._heartbeat_lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._owner = ""

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection of this process (reopened after a fork, as SQLite requires)."""
        if self._pid != os.getpid():  # first use, or a forked child: a new owner of claims
            self._conn = None
            self._pid = os.getpid()
            self._owner = f"{_HOST}:{self._pid}:{uuid.uuid4().hex[:8]}"
            # a forked child has no heartbeat thread, and may have copied its lock while held
            self._heartbeat, self._heartbeat_lock = None, threading.Lock()
        if self._conn is None:  # also after close(): the same owner, its claims still its own
            self._conn = self._connect()
        return self._conn

    @property
    def owner(self) -> str:
        """Who this store object is in the ``claims`` table: ``host:pid:token``."""
        _ = self.conn
        return self._owner

    @property
    def shared(self) -> bool:
        """Whether other store objects can see this one's rows (a file, not ``:memory:``)."""
        return self.path != ":memory:"

    def _connect(self) -> sqlite3.Connection:
        """Open the file, switch it to WAL and create the schema.

        Switching the journal mode needs an exclusive lock and SQLite does not wait for it (no
        busy handler), so processes opening a fresh file together retry here until ``timeout``.
        """
        deadline = time.monotonic() + self._timeout
        delay = 0.01
        while True:
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
            try:
                if self.path != ":memory:" and conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(_SCHEMA)
                return conn
            except sqlite3.OperationalError as exc:
                conn.close()
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def __getstate__(self) -> dict[str, object]:
        """Pickle without the connection (envs are pickled by vector envs)."""
        state = dict(self.__dict__)
        state.update(_conn=None, _pid=-1, _owner="", _heartbeat=None)
        del state["_heartbeat_lock"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        """Unpickle: a new lock; the connection and the owner are made on first use."""
        self.__dict__.update(state)
        self._heartbeat_lock = threading.Lock()

    @contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``: reads and writes inside see no other writer."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def lookup(self, arch: str, fingerprint: str) -> tuple[EvalResult, float] | None:
        """The first successful stored evaluation of ``arch`` at ``fingerprint`` and its reward."""
        row = self.conn.execute(
            "SELECT status, metrics, num_params, cost_s, error, seed, reward FROM evaluations "
            "WHERE arch = ? AND fingerprint = ? AND status = 'ok' ORDER BY id LIMIT 1",
            (arch, fingerprint),
        ).fetchone()
        if row is None:
            return None
        status, metrics, num_params, cost_s, error, seed, reward = row
        result = EvalResult(status, json.loads(metrics), num_params, cost_s, error, seed)
        return result, reward

    def add(self, arch: str, fingerprint: str, result: EvalResult, reward: float) -> int:
        """Append one evaluation (committed at once) and return its row id."""
        cur = self.conn.execute(
            "INSERT INTO evaluations (arch, fingerprint, seed, status, reward, metrics, num_params,"
            " cost_s, error, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                arch,
                fingerprint,
                result.seed,
                result.status,
                reward,
                json.dumps(result.metrics),
                result.num_params,
                result.cost_s,
                result.error,
                time.time(),
            ),
        )
        return int(cur.lastrowid or 0)

    def claim(self, arch: str, fingerprint: str) -> ClaimState:
        """Reserve the training of ``arch`` for this store object, unless it is done or taken.

        Atomic across processes: of several processes claiming one architecture at once, one gets
        ``"claimed"`` and the others ``"busy"`` until it calls :meth:`release`. A claim held by a
        process that has died, or whose heartbeat is older than ``claim_ttl``, is taken over.
        An in-memory store is private to its object: it has no one to share work with, and every
        claim succeeds at no cost (the env's lookup has already ruled out ``"done"``).
        """
        if not self.shared:
            return "claimed"
        owner = self.owner
        with self._write_transaction() as conn:
            done = conn.execute(
                "SELECT 1 FROM evaluations WHERE arch = ? AND fingerprint = ? AND status = 'ok' LIMIT 1",
                (arch, fingerprint),
            ).fetchone()
            if done is not None:
                return "done"
            held = conn.execute(
                "SELECT owner, heartbeat FROM claims WHERE arch = ? AND fingerprint = ?", (arch, fingerprint)
            ).fetchone()
            if held is not None and held[0] != owner and self._claim_alive(*held):
                return "busy"
            conn.execute(
                "INSERT OR REPLACE INTO claims (arch, fingerprint, owner, heartbeat) VALUES (?, ?, ?, ?)",
                (arch, fingerprint, owner, time.time()),
            )
        self._keep_claims_alive()
        return "claimed"

    def release(self, arch: str, fingerprint: str) -> None:
        """Give up this store object's claim on ``arch`` (a no-op when it holds none)."""
        if not self.shared:
            return
        self.conn.execute(
            "DELETE FROM claims WHERE arch = ? AND fingerprint = ? AND owner = ?",
            (arch, fingerprint, self.owner),
        )

    def _keep_claims_alive(self) -> None:
        """Make sure a heartbeat thread renews this store's claims (it stops once none is left)."""
        with self._heartbeat_lock:
            beat = self._heartbeat
            if beat is None or beat.finished or beat.owner != self.owner:
                interval = self.claim_ttl / 4
                beat = _Heartbeat(self.path, self.owner, interval, self._timeout, self._heartbeat_lock)
                beat.start()
                self._heartbeat = beat

    def _claim_alive(self, owner: str, heartbeat: float) -> bool:
        """Whether a claim's process may still be training (the pid is checked on this host)."""
        if time.time() - heartbeat > self.claim_ttl:
            return False
        host, pid, _ = owner.rsplit(":", 2)
        if host != _HOST or os.name != "posix":  # os.kill(pid, 0) would kill on Windows
            return True
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, owned by another user
            return True
        return True

    def rows(self, fingerprint: str | None = None) -> list[dict[str, object]]:
        """Every stored evaluation in insertion order (optionally of one fingerprint), as dicts."""
        query = "SELECT * FROM evaluations"
        args: tuple[str, ...] = ()
        if fingerprint is not None:
            query, args = query + " WHERE fingerprint = ?", (fingerprint,)
        cur = self.conn.execute(query + " ORDER BY id", args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def __len__(self) -> int:
        """Number of stored evaluations."""
        return int(self.conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0])

    def close(self) -> None:
        """Close this process's connection."""
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None


class _Heartbeat(threading.Thread):
    """Renews the ``heartbeat`` of one owner's claims every ``interval`` s; ends when it holds none.

    A daemon thread with its own connection (SQLite connections stay in their thread). It renews
    while children train inside the owner's thread (torch releases the GIL), so a claim outlives
    its ``claim_ttl`` exactly as long as its process is alive and holds it.
    """

    def __init__(self, path: str, owner: str, interval: float, timeout: float, lock: threading.Lock) -> None:
        super().__init__(name="nas-env-claims-heartbeat", daemon=True)
        self.path, self.owner, self.interval, self.timeout, self.lock = path, owner, interval, timeout, lock
        self.finished = False

    def run(self) -> None:
        """Renew until no claim of this owner is left (checked under the store's heartbeat lock)."""
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            while True:
                time.sleep(self.interval)
                with self.lock:
                    renewed = conn.execute(
                        "UPDATE claims SET heartbeat = ? WHERE owner = ?", (time.time(), self.owner)
                    ).rowcount
                    if renewed == 0:
                        self.finished = True
                        return
        except sqlite3.Error:  # the file went away, or stayed locked past ``timeout``
            with self.lock:
                self.finished = True  # the next claim starts a new thread
        finally:
            conn.close()
