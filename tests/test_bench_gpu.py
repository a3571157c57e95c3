"""``benchmarks/bench_gpu.py --device cpu --quick`` runs (as CI runs it) and prints every figure line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_gpu_quick_on_cpu_prints_every_line():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "benchmarks/bench_gpu.py", "--device", "cpu", "--quick"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert re.search(r"^peak: bf16 matmul \d+\.\d+ TFLOP/s measured on cpu$", out, re.M), out
    number = r"\s+\d+\.\d+"
    steps = re.findall(
        rf"^step (reference 6-layer|random 6-layer #0|random 15-layer)\s+\d+\.\d+(?:{number} s){{3}}",
        out,
        re.M,
    )
    assert steps == ["reference 6-layer", "random 6-layer #0", "random 15-layer"], out
    rows = re.findall(
        r"^concurrent (landed|new) step, K=(\d)\s+\d+\.\d+\s+(\d+\.\d)\s+\d+\.\d%\s+(\d+\.\d\d)x$", out, re.M
    )
    assert [(r[0], r[1]) for r in rows] == [("landed", "1"), ("new", "2")], out
    assert all(float(r[2]) > 0 for r in rows) and rows[0][3] == "1.00"
    assert re.search(
        r"^children/hour best: (landed|new) step, K=\d: \d+\.\d paper 6-layer children/h", out, re.M
    )
