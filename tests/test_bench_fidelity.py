"""``benchmarks/bench_fidelity.py`` runs on tiny samples of both spaces, resumes from its store, and
rejects bad arguments in one line. Real CIFAR-10 (smoke preset), and the real NB201 table when present."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def bench(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "benchmarks/bench_fidelity.py", "--threads", "1", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


def figures(stdout: str) -> list[str]:
    """The printed figures: every line after the 'wall N s' line."""
    lines = stdout.splitlines()
    return lines[next(i for i, line in enumerate(lines) if ", wall " in line) + 1 :]


@pytest.mark.slow
def test_both_spaces_side_by_side_then_from_the_store(tmp_path: Path, data_dir: Path) -> None:
    store = tmp_path / "fid.sqlite"
    args = ("--presets", "smoke", "--children", "3", "--cells", "3", "--no-reference", "--store", str(store))
    first = bench(*args, "--workers", "2")  # trained in a 2-process pool, one thread each
    assert first.returncode == 0, first.stderr[-3000:]
    out = first.stdout
    assert "2 workers x 1 threads" in out
    assert "CNN space: 3 random 6-layer children (CnnSearchSpace sample, seed 0)" in out
    assert re.search(r"^  smoke\s+tau s0-s1\s+-?\d\.\d{3}\s+s/child mean", out, re.M), out
    assert re.search(r"^NB201 trained mode: 3 cells drawn uniformly \(seed 0\)", out, re.M), out
    nb201 = (
        r"^  smoke\s+tau seed 0\s+-?\d\.\d{3}\s+tau seed 1\s+-?\d\.\d{3}\s+top half\s+-?\d\.\d{3}\s+tau s0-s1"
    )
    assert re.search(nb201, out, re.M), out
    with sqlite3.connect(store) as db:  # 3 children x 2 seeds + 3 cells x 2 seeds
        assert db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] == 12
    again = bench(*args)  # inline this time: the same store serves both
    assert again.returncode == 0 and "3 of 3 cached" in again.stdout and "  smoke " in again.stdout
    # the same taus and seconds, read from the store (the wall-clock per child only when trained)
    assert "wall/child" in out and "wall/child" not in again.stdout
    assert figures(again.stdout) == [re.sub(r"  wall/child .*", "", line) for line in figures(out)]
    with sqlite3.connect(store) as db:  # nothing trained twice
        assert db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] == 12


def test_a_preset_variant_is_its_own_row_and_cache_key(tmp_path: Path, data_dir: Path) -> None:
    """``smoke:bf16`` (the smoke recipe in bf16) and ``smoke:epochs=2:batch_size=32`` (any recipe
    field overridden): each trained and stored under its own recipe's fingerprint."""
    from nas_env.evaluators.training import CifarTrainingEvaluator
    from nas_env.training.recipes import FIDELITIES

    store = tmp_path / "fid.sqlite"
    presets = "smoke:bf16,smoke:epochs=2:batch_size=32"
    args = ("--space", "cnn", "--presets", presets, "--children", "2", "--train-seeds", "1")
    done = bench(*args, "--no-reference", "--store", str(store))
    assert done.returncode == 0, done.stderr[-3000:]
    for row in ("smoke:bf16", "smoke:epochs=2:batch_size=32"):
        assert re.search(rf"^  {row}\s+tau s0-s1\s+nan\s+s/child mean", done.stdout, re.M), done.stdout
    variants = (
        FIDELITIES["smoke"].replace(precision="bf16"),
        FIDELITIES["smoke"].replace(epochs=2, batch_size=32),
    )
    with sqlite3.connect(store) as db:
        keys = sorted(row[0] for row in db.execute("SELECT fingerprint FROM evaluations"))
    expected = [f"{CifarTrainingEvaluator(f, data_dir=data_dir).fingerprint}:s0" for f in variants]
    assert keys == sorted(expected * 2) and len(set(expected)) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--presets", "fast"), "--presets: unknown preset 'fast'; choose from ['paper', 'proxy', 'smoke']"),
        (("--children", "1"), "Kendall's tau needs --children and --cells >= 2"),
        (("--reference-seeds", "0"), "--train-seeds and --reference-seeds >= 1"),
        (("--workers", "0"), "--workers must be >= 1, got 0"),
        (
            ("--presets", "proxy:fp16"),
            "unknown precision 'fp16' in 'proxy:fp16'; choose from ('fp32', 'bf16', 'auto')",
        ),
        (("--presets", "proxy:epoch=4"), "unknown field 'epoch' in 'proxy:epoch=4'; choose from ['augment',"),
        (
            ("--presets", "proxy:epochs=four"),
            "--presets: epochs='four' in 'proxy:epochs=four' is not of type int",
        ),
        (
            ("--presets", "proxy:resolution=24"),
            "Fidelity.resolution=24 is not allowed; expected one of [32, 16, 8]",
        ),
    ],
)
def test_bad_arguments(args: tuple[str, ...], message: str) -> None:
    done = bench(*args, timeout=60)
    assert done.returncode == 2 and message in done.stderr
