"""benchmarks/bench_cell.py on the real PTB data, briefly: throughput rows with the adaptive softmax,
a preset with recipe overrides in the seconds-per-child table, and a bad preset."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from test_ptb_data import ptb_dir  # noqa: F401 - the real data root fixture

ROOT = Path(__file__).resolve().parent.parent


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "benchmarks/bench_cell.py", "--threads", "1", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_bench_prints_the_adaptive_softmax_speed_up_and_times_an_overridden_preset(ptb_dir: Path) -> None:  # noqa: F811
    out = run_bench(
        "--quick",
        "--seconds",
        "0.3",
        "--children",
        "1",
        "--adaptive-softmax",
        "1000",
        "--presets",
        "smoke,smoke:adaptive_softmax=1000:train_tokens=3000",
    )
    assert out.returncode == 0, out.stderr
    row = re.search(
        r"adaptive softmax \(1000 words\):\s+NASCell\s+(\d+) \(([\d.]+)x\)\s+nn.LSTM\s+(\d+) \(([\d.]+)x\)",
        out.stdout,
    )
    assert row, out.stdout
    assert all(float(v) > 0 for v in row.groups())
    for preset in ("smoke", "smoke:adaptive_softmax=1000:train_tokens=3000"):
        lstm = re.search(rf"^  {re.escape(preset)}\s+lstm\s+([\d.]+) s  val ppl\s+([\d.]+)", out.stdout, re.M)
        assert lstm and float(lstm.group(2)) > 1, out.stdout


def test_a_bad_preset_is_one_line_naming_it() -> None:
    out = run_bench("--quick", "--presets", "smoke:adaptive_softmax=zero")
    assert out.returncode == 2
    assert "adaptive_softmax='zero'" in out.stderr and "not of type int" in out.stderr
