"""Issue 22: the redesign changes no cache key and no reward.

``tests/fixtures/golden_22.json`` was recorded by ``tests/golden.py`` before the redesign; these
tests recompute every value with the current code and compare bit for bit. The run directories
under ``tests/fixtures/resume_22/`` were written by ``nas-search`` before the redesign (killed
after 6 of 12 evaluations, as a crash would leave them); ``--resume`` must continue each exactly
as the uninterrupted run did.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import golden
import pytest

RESUME = Path(__file__).parent / "fixtures" / "resume_22"


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads(golden.FIXTURE.read_text())


def test_issue_22_fingerprints_unchanged(recorded):
    """Every env's cache key (evaluator fingerprint) is the one recorded before the redesign."""
    assert golden.fingerprints() == recorded["fingerprints"]


def test_issue_22_seeded_searches_unchanged(recorded, tmp_path, data_dir):
    """Each agent's seeded search on the real and the synthetic NB201 table: same archs, rewards, info."""
    now = json.loads(json.dumps(golden.searches(tmp_path, data_dir)))
    assert sorted(now) == sorted(recorded["searches"])
    for run, evaluations in recorded["searches"].items():
        assert now[run] == evaluations, run


def test_issue_22_trained_episodes_unchanged(recorded, data_dir):
    """A smoke-trained CIFAR child and two weight-sharing scores: same rewards and metrics, bit for bit."""
    now = json.loads(json.dumps(golden.trained_episodes(data_dir)))
    assert now == recorded["trained"]


@pytest.mark.parametrize("agent", sorted(p.name for p in RESUME.iterdir()))
def test_issue_22_resume_reads_checkpoints_written_before(agent, tmp_path):
    """``nas-search --resume`` continues a pre-redesign checkpoint into the uninterrupted run's rows."""
    out = tmp_path / "run"
    shutil.copytree(RESUME / agent, out)
    expected = (out / "uninterrupted_12.csv").read_text()
    (out / "uninterrupted_12.csv").unlink()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.search",
            "--out",
            str(out),
            "--resume",
            "--budget",
            "12",
            "--no-progress",
        ],
        cwd=golden.REPO,
        check=True,
        capture_output=True,
    )
    assert (out / "evaluations.csv").read_text() == expected
