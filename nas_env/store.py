"""The results store: every evaluation in SQLite, and the cache built on it.

One row per evaluation (architecture, evaluator fingerprint, seed, status, reward, metrics,
parameters, seconds, error). Each row is committed on its own, in WAL mode, so a process killed
with SIGKILL loses no committed evaluation and leaves the file readable, and several processes can
share one file (SQLite's locking; writers wait up to ``timeout`` seconds).

The cache is keyed by ``(arch, fingerprint)``: the same architecture at the same fidelity is
trained once and then looked up.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from nas_env.type_aliases import EvalResult

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
"""


class ResultsStore:
    """SQLite results store and evaluation cache.

    Args:
        path: Database file; ``None`` or ``":memory:"`` keeps it in memory for this object only.
        timeout: Seconds a writer waits for another process's lock.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, timeout: float = 60.0) -> None:
        """Open (creating if needed) the database."""
        self.path = ":memory:" if path in (None, ":memory:") else str(Path(path).expanduser())
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._timeout = timeout
        self._conn: sqlite3.Connection | None = None
        self._pid = -1

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection of this process (reopened after a fork, as SQLite requires)."""
        if self._conn is None or self._pid != os.getpid():
            self._conn = self._connect()
            self._pid = os.getpid()
        return self._conn

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
        return {"path": self.path, "_timeout": self._timeout, "_conn": None, "_pid": -1}

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
