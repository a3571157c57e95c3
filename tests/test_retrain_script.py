"""scripts/retrain.py trains one architecture string and reports validation and test accuracy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_retrain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.retrain", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_retrain_reports_validation_and_test_accuracy(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = run_retrain(
        "--arch", "3x3:24 | 3x3:24 <0", "--fidelity", "smoke", "--train-images", "128", "--json", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["arch"] == "3x3:24 | 3x3:24 <0" and result["status"] == "ok"
    assert 0 <= result["val_accuracy"] <= 1 and 0 <= result["test_accuracy"] <= 1
    assert json.loads(proc.stdout) == result


def test_retrain_bad_input_is_one_clear_line() -> None:
    proc = run_retrain("--arch", "3x3:24 | 3z3", "--fidelity", "smoke")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("nas-retrain: error: cannot parse layer 1 '3z3'")
    proc = run_retrain("--arch", "3x3:24", "--fidelity", "smok")
    assert "Did you mean 'smoke'?" in proc.stderr and proc.returncode == 2
