"""``benchmarks/bench_signals.py``: τ of every signal of a measured-evaluations CSV against the real table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bench_modules import load_benchmark

from nas_env.evaluators.replay import read_measured_csv
from nas_env.evaluators.tabular import find_nb201_table, load_nb201_table
from nas_env.ranking import kendall_tau
from nas_env.search_spaces.nb201 import NB201Architecture

REPO = Path(__file__).resolve().parents[1]
MEASURED = REPO / "benchmarks" / "measured" / "nb201_proxy_30min_seeds01.csv"
HEADER = "arch,fidelity,score,seconds,seed\n"


bench = load_benchmark("bench_signals")


def table_row(out: str, name: str) -> list[str]:
    [line] = [line for line in out.splitlines() if line.startswith(f"| {name} |")]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_proxy_row_is_the_tau_of_the_committed_measurement(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    assert bench.main([str(MEASURED)]) == 0
    out = capsys.readouterr().out
    truth = load_nb201_table(find_nb201_table(data_dir)).column("cifar10_test_acc_200ep")
    rows = [r for r in read_measured_csv(MEASURED) if r.fidelity == "proxy"]
    cells = np.array([NB201Architecture.from_str(r.arch).index for r in rows])
    scores = np.array([-np.inf if r.score is None else r.score for r in rows])
    better = truth[cells] >= np.median(truth[cells])
    _, count, tau_all, tau_half, *_ = table_row(out, "proxy")
    assert int(count) == len(rows) > 100
    assert float(tau_all) == pytest.approx(kendall_tau(scores, truth[cells]), abs=0.005)
    assert float(tau_half) == pytest.approx(kendall_tau(scores[better], truth[cells][better]), abs=0.005)
    # the zero-cost screen's scores and their rank average with the reward get rows of their own
    assert int(table_row(out, "zero_cost:live_params")[1]) > len(rows)
    assert int(table_row(out, "rank average proxy + live_params")[1]) == len(rows)


def test_a_failed_child_ranks_below_every_trained_one(tmp_path: Path, data_dir: Path) -> None:
    table = load_nb201_table(find_nb201_table(data_dir))
    truth = table.column("cifar10_test_acc_200ep")
    best, middle, worst = (int(i) for i in np.argsort(truth)[[-1, 7000, 10]])
    arch = [NB201Architecture.from_index(i).to_str() for i in (best, middle, worst)]
    path = tmp_path / "m.csv"
    # the worst cell failed to train: ranked last, as it is in the table, so the order is perfect
    rows = [f"{arch[0]},proxy,0.8,1.0,0", f"{arch[1]},proxy,0.7,1.0,0", f"{arch[2]},proxy,,1.0,0"]
    path.write_text(HEADER + "\n".join(rows) + "\n")
    signals = bench.read_signals([str(path)])
    assert signals["proxy"][worst] == -np.inf
    lines = bench.report(signals, truth, table.column(bench.REFERENCE_COLUMN))
    assert table_row("\n".join(lines), "proxy")[:3] == ["proxy", "3", "+1.00"]


def test_rank_average_gives_ties_one_rank_and_a_failed_child_the_lowest() -> None:
    ranks = bench.rank_average([np.array([1.0, 1.0, 2.0]), np.array([-np.inf, 2.0, 1.0])])
    # ranks of the first scoring: 1.5, 1.5 (a tie), 3; of the second, where -inf ranks lowest: 1, 3, 2
    assert ranks.tolist() == [1.25, 2.25, 2.5]


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        (None, [], "cannot be read"),
        (HEADER + "|conv~0|,proxy,0.5,1.0,0\n", [], "this benchmark ranks NAS-Bench-201 exports"),
        ("a,b\n", [], "expected the header arch,fidelity,score,seconds,seed"),
        (HEADER, ["--truth", "cifar100_acc"], "no column 'cifar100_acc'"),
    ],
)
def test_bad_input_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, extra: list[str], message: str
) -> None:
    path = tmp_path / "m.csv"
    if content is not None:
        path.write_text(content)
    assert bench.main([str(path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench_signals: error:") and message in err and "\n" not in err
