"""``benchmarks/bench_budget.py``: small-budget searches simulated on an NB201 table with a real screen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bench_modules import load_benchmark

from nas_env.evaluators.nb201_synthetic import write_nb201_table

bench = load_benchmark("bench_budget")


def test_the_screen_picks_the_best_scored_candidate_and_the_signal_the_returned_cell() -> None:
    scores = np.array([0.0, 3.0, 1.0, 2.0])
    signal = np.array([0.0, 1.0, 3.0, 2.0])
    truth = np.array([90.0, 91.0, 92.0, 93.0])
    # every candidate screened: the children are the cells in score order, untrained ones first
    assert list(bench.simulate(1, 4, scores, signal, truth, 3)) == [91.0] * 3
    assert list(bench.simulate(2, 4, scores, signal, truth, 3)) == [93.0] * 3  # cells 1, 3: 3 signals better
    # no screen, every cell trained: the best signal is returned
    assert list(bench.simulate(4, 1, scores, signal, truth, 3)) == [92.0] * 3


def test_prints_a_row_per_budget_from_real_zero_cost_scores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    table = write_nb201_table(tmp_path / "table.csv")
    argv = ["--table", str(table), "--sample", "12", "--budgets", "1,3", "--screens", "1,4", "--trials", "20",
            "--store", str(tmp_path / "zc.sqlite")]  # fmt: skip
    bench.main(argv)
    out = capsys.readouterr().out
    assert "12 cells (seed 0); live_params: Kendall tau" in out
    assert "| trained children | random | screen 4 |" in out
    rows = [line for line in out.splitlines() if line.startswith(("| 1 |", "| 3 |"))]
    assert len(rows) == 2 and all(line.count("±") == 2 for line in rows)
    bench.main(argv)  # the scores come from the store the second time
    assert "0.000 s per new score" in capsys.readouterr().out


def test_a_screen_larger_than_the_sample_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        bench.main(["--sample", "12", "--budgets", "3", "--screens", "1,50"])
    assert stop.value.code == 2
    assert "--screens [1, 50]: each must be in [1, --sample 12]" in capsys.readouterr().err
