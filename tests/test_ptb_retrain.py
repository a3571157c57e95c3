"""scripts/retrain.py with --space ptb reports validation and test perplexity."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_retrain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.retrain", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_retrain_ptb_reports_validation_and_test_perplexity(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = run_retrain(
        "--space", "ptb", "--arch", "nascell", "--fidelity", "smoke", "--lr", "0.01", "--json", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["space"] == "ptb" and result["status"] == "ok" and result["arch"].endswith("c_out 12")
    assert 1 < result["val_perplexity"] < 1e5 and 1 < result["test_perplexity"] < 1e5
    assert math.isfinite(result["train_loss"]) and result["num_params"] > 0
    assert json.loads(proc.stdout) == result


def test_retrain_ptb_bad_input_is_one_clear_line() -> None:
    proc = run_retrain("--space", "ptb", "--arch", "add:tanh mul:relu / mul:gelu", "--fidelity", "smoke")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("nas-retrain: error: unknown node operation mul:gelu")
    proc = run_retrain("--space", "ptb", "--arch", "nascell", "--fidelity", "smoke", "--train-images", "5")
    assert proc.returncode == 2 and "--train-images does not apply to PTB" in proc.stderr


def test_recipe_flags_of_either_space_and_all_for_the_whole_split() -> None:
    from scripts.retrain import parse_args, recipe_overrides

    args = parse_args(
        ["--arch", "nascell", "--space", "ptb", "--epochs", "2", "--train-tokens", "all"]
        + ["--valid-tokens", "3000", "--adaptive-softmax", "none", "--lr-schedule", "constant"]
    )
    assert recipe_overrides(args) == {
        "epochs": 2,
        "train_tokens": None,
        "valid_tokens": 3000,
        "adaptive_softmax": None,
        "lr_schedule": "constant",
    }
    assert recipe_overrides(parse_args(["--arch", "x"])) == {}


def test_retrain_ptb_at_a_longer_recipe_reports_the_recipe_it_trained(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = run_retrain(
        "--space", "ptb", "--arch", "tanh_rnn", "--fidelity", "smoke", "--train-tokens", "2000",
        "--valid-tokens", "all", "--epochs", "2", "--json", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "ok" and 1 < result["val_perplexity"] < 1e5
    assert (result["recipe"]["train_tokens"], result["recipe"]["valid_tokens"]) == (2000, None)
    assert result["recipe"]["epochs"] == 2 and result["recipe"]["hidden_size"] == 32  # the rest: smoke


def test_recipe_flags_of_the_wrong_space_or_value_are_one_clear_line() -> None:
    proc = run_retrain("--arch", "3x3:8", "--fidelity", "smoke", "--train-tokens", "5")
    assert proc.returncode == 2 and "--train-tokens does not apply to the CNN space" in proc.stderr
    proc = run_retrain("--space", "ptb", "--arch", "nascell", "--train-tokens", "lots")
    assert proc.returncode == 2 and "'lots' is not a whole number, 'all' or 'none'" in proc.stderr
