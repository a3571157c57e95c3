"""``benchmarks/bench_search.py``: searches in NB201's trained mode under a wall clock charged in measured
seconds, judged by the table; and on the CNN space, judged by retraining. Real training at the ``smoke``
preset (a few children per run), on the synthetic table and on the real one; the charging of stored
evaluations, export and replay, resume after a kill, and one-line errors for bad arguments."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bench_modules import load_benchmark

from nas_env.errors import DatasetError
from nas_env.evaluators.nb201_synthetic import write_nb201_table
from nas_env.evaluators.replay import (
    MeasuredEvaluation,
    ReplayEvaluator,
    read_measured_csv,
    write_measured_csv,
)
from nas_env.evaluators.tabular import find_nb201_table, load_nb201_table
from nas_env.search_spaces.cnn import CnnArchitecture
from nas_env.search_spaces.nb201 import NB201Architecture

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_search.py"


bench = load_benchmark("bench_search")


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_nb201_table(tmp_path_factory.mktemp("nb201") / "table.csv"))


def run(out: Path, *args: str) -> list[dict[str, str]]:
    """Run the benchmark in this process at the smoke preset, one worker; return runs.csv."""
    code = bench.main(["--no-progress", "--fidelity", "smoke", "--workers", "1", "--out", str(out), *args])
    assert code == 0
    with (out / "runs.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def stored(store: Path) -> list[tuple[str, str, float]]:
    """``(arch, status, cost_s)`` of every stored evaluation, in the order they were stored."""
    with sqlite3.connect(store) as conn:
        return conn.execute("SELECT arch, status, cost_s FROM evaluations ORDER BY id").fetchall()


def copy_store(src: Path, dst: Path) -> Path:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst


@pytest.fixture(scope="module")
def first_run(
    table: str, tmp_path_factory: pytest.TempPathFactory, data_dir: Path
) -> tuple[Path, dict[str, str]]:
    """One random search (seed 0) that trains 4 smoke children into a fresh store; the budget never binds."""
    root = tmp_path_factory.mktemp("first")
    store = root / "store.sqlite"
    [row] = run(
        root / "out",
        "--table",
        table,
        "--store",
        str(store),
        "--policies",
        "random",
        "--seeds",
        "1",
        "--time-budget",
        "1000",
        "--max-evaluations",
        "4",
    )
    return store, row


def common(table: str, store: Path, *extra: str) -> tuple[str, ...]:
    return ("--table", table, "--store", str(store), "--policies", "random", "--seeds", "1", *extra)


# ---- the clock -------------------------------------------------------------------------------------------


def test_a_run_is_charged_the_measured_seconds_it_used(first_run: tuple[Path, dict[str, str]]) -> None:
    store, row = first_run
    rows = stored(store)
    assert [status for _, status, _ in rows] == ["ok"] * 4 and len({arch for arch, _, _ in rows}) == 4
    assert (row["evaluations"], row["trained"]) == ("4", "4")
    assert float(row["charged_s"]) == sum(cost for _, _, cost in rows) > 0  # in the order trained
    assert float(row["clock_s"]) == float(row["charged_s"])  # one worker


def test_a_second_run_over_the_store_is_charged_the_same_and_returns_the_same_cell(
    first_run: tuple[Path, dict[str, str]], table: str, tmp_path: Path
) -> None:
    store, first = first_run
    store = copy_store(store, tmp_path / "store.sqlite")
    [again] = run(tmp_path / "out", *common(table, store, "--time-budget", "1000", "--max-evaluations", "4"))
    assert again["trained"] == "0" and len(stored(store)) == 4  # nothing trained twice
    for key in ("arch", "reward", "evaluations", "charged_s", "clock_s", "test_acc_200ep", "rank"):
        assert again[key] == first[key], key


@pytest.mark.parametrize("workers", [1, 2])
def test_the_evaluation_that_would_pass_the_budget_is_dropped(
    first_run: tuple[Path, dict[str, str]], table: str, tmp_path: Path, workers: int
) -> None:
    """With every evaluation in the store the clock is exact: charged seconds / workers."""
    store = copy_store(first_run[0], tmp_path / "store.sqlite")
    c1, c2, c3 = (cost for _, _, cost in stored(store)[:3])
    budget = (c1 + c2 + c3 / 2) / workers
    args = common(table, store, "--time-budget", repr(budget), "--max-evaluations", "4")
    code = bench.main(
        ["--no-progress", "--fidelity", "smoke", "--workers", str(workers), "--out", str(tmp_path), *args]
    )
    assert code == 0
    [row] = csv.DictReader((tmp_path / "runs.csv").open(newline=""))
    assert (row["evaluations"], row["trained"]) == ("2", "0")
    assert float(row["charged_s"]) == c1 + c2 and float(row["clock_s"]) == (c1 + c2) / workers


# ---- export and replay -----------------------------------------------------------------------------------


BUDGET_4 = ("--time-budget", "1000", "--max-evaluations", "4")


def export_first_run(
    first_run: tuple[Path, dict[str, str]], table: str, tmp_path: Path
) -> tuple[Path, Path, list[dict[str, str]]]:
    """The first run again over a copy of its store, with --export: the store, the CSV, runs.csv."""
    store = copy_store(first_run[0], tmp_path / "store.sqlite")
    exported = tmp_path / "measured.csv"
    return store, exported, run(tmp_path / "a", *common(table, store, *BUDGET_4, "--export", str(exported)))


def test_export_then_replay_gives_the_same_figures_without_training(
    first_run: tuple[Path, dict[str, str]], table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, exported, original = export_first_run(first_run, table, tmp_path)
    rows = read_measured_csv(exported)
    assert [(r.arch, r.seconds) for r in rows] == [(a, c) for a, _, c in stored(store)]
    assert {r.fidelity for r in rows} == {"smoke"} and all(0 <= (r.score or 0) <= 1 for r in rows)
    assert "# made by: python benchmarks/bench_search.py" in exported.read_text()
    replay = ("--table", table, "--policies", "random", "--seeds", "1", "--replay", str(exported))
    replayed = run(tmp_path / "b", *replay, *BUDGET_4)
    for key in ("arch", "reward", "evaluations", "charged_s", "clock_s", "test_acc_200ep", "rank"):
        assert replayed[0][key] == original[0][key], key
    capsys.readouterr()
    code = bench.main(
        [
            "--no-progress",
            "--fidelity",
            "smoke",
            "--out",
            str(tmp_path / "c"),
            *replay,
            "--time-budget",
            "1000",
            "--max-evaluations",
            "6",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "bench_search: error: evaluating '|" in err and f"not in {exported} at fidelity 'smoke'" in err


def test_a_screened_policy_is_charged_its_zero_cost_scores_and_replays(table: str, tmp_path: Path) -> None:
    store, exported = tmp_path / "store.sqlite", tmp_path / "measured.csv"
    args = (
        "--table",
        table,
        "--policies",
        "screened_random",
        "--seeds",
        "1",
        "--time-budget",
        "1000",
        "--max-evaluations",
        "2",
    )
    [row] = run(tmp_path / "a", *args, "--store", str(store), "--export", str(exported))
    rows = read_measured_csv(exported)
    screened = [r for r in rows if r.fidelity == "zero_cost:live_params"]
    assert len(screened) > 2 and len(rows) == len(screened) + 2  # 20 candidates scored per evaluation
    assert float(row["charged_s"]) == pytest.approx(sum(r.seconds for r in rows), rel=1e-12)
    [replayed] = run(tmp_path / "b", *args, "--replay", str(exported))
    assert (replayed["arch"], replayed["charged_s"]) == (row["arch"], row["charged_s"])


def test_an_imported_export_continues_the_measurement_in_a_fresh_store(
    first_run: tuple[Path, dict[str, str]], table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--import-csv fills a new store from another store's export: the runs find every cell there."""
    store, exported, original = export_first_run(first_run, table, tmp_path)
    fresh = tmp_path / "fresh.sqlite"
    capsys.readouterr()
    [again] = run(tmp_path / "b", *common(table, fresh, *BUDGET_4, "--import-csv", str(exported)))
    said = capsys.readouterr().out
    assert f"imported 4 measured evaluations from {exported} (0 already in the store)" in said
    assert again["trained"] == "0" and stored(fresh) == stored(store)
    for key in ("arch", "reward", "evaluations", "charged_s", "clock_s", "test_acc_200ep", "rank"):
        assert again[key] == original[0][key], key
    run(tmp_path / "c", *common(table, fresh, *BUDGET_4, "--import-csv", str(exported)))
    assert "imported 0 measured evaluations" in capsys.readouterr().out and len(stored(fresh)) == 4


def test_runs_go_seed_by_seed(table: str, tmp_path: Path) -> None:
    """A benchmark stopped early holds every policy at the same seeds."""
    config = bench.parse_config(
        ["--out", str(tmp_path), "--table", table, "--policies", "random,local_search", "--seeds", "2",
         "--time-budget", "60", "--fidelity", "smoke"]
    )  # fmt: skip
    jobs, _ = bench.prepare(config)
    assert [(job.policy, job.seed) for job in jobs] == [
        ("random", 0), ("local_search", 0), ("random", 1), ("local_search", 1)
    ]  # fmt: skip


def test_first_seed_adds_later_seeds_only(table: str, tmp_path: Path) -> None:
    """--first-seed 2 --seeds 2 runs seeds 2 and 3, each as seed 2 and 3 of a longer benchmark would."""
    args = ("--table", table, "--policies", "random", "--time-budget", "1000", "--max-evaluations", "2")
    later = run(
        tmp_path / "later", *args, "--seeds", "2", "--first-seed", "2", "--store", str(tmp_path / "a.sqlite")
    )
    whole = run(tmp_path / "whole", *args, "--seeds", "4", "--store", str(tmp_path / "b.sqlite"))
    assert [r["seed"] for r in later] == ["2", "3"]
    assert [(r["arch"], r["reward"]) for r in later] == [(r["arch"], r["reward"]) for r in whole[2:]]
    assert "Seeds 2..3." in (tmp_path / "later" / "summary.md").read_text()


def test_a_zero_cost_start_is_charged_its_climb(table: str, tmp_path: Path) -> None:
    """local_search with start_score: the climb's scores are charged and exported, its top is trained."""
    exported = tmp_path / "measured.csv"
    kwargs = (
        "local_search.start_score=live_params",
        "local_search.initial_random=1",
        "local_search.model_samples=1",
    )
    args = ("--table", table, "--policies", "local_search", "--seeds", "1", "--agent-kwargs", *kwargs,
            "--time-budget", "1000", "--max-evaluations", "2")  # fmt: skip
    [row] = run(tmp_path / "a", *args, "--store", str(tmp_path / "store.sqlite"), "--export", str(exported))
    rows = read_measured_csv(exported)
    scores = {r.arch: r.score for r in rows if r.fidelity == "zero_cost:live_params"}
    trained = [r for r in rows if r.fidelity == "smoke"]
    assert len(trained) == 2 and len(scores) > 24  # at least the start and all 24 of its neighbours scored
    first = max(scores, key=scores.__getitem__)
    assert first in {r.arch for r in trained}  # a climb ends at the best score it saw
    assert float(row["charged_s"]) == pytest.approx(sum(r.seconds for r in rows), rel=1e-12)


# ---- successive halving, the real table, the command line, resume ----------------------------------------


def test_promote_returns_the_top_rung(table: str, tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    args = ("--promote", "smoke", "--promote-bracket", "3", "--time-budget", "1000", "--max-evaluations", "4")
    [row] = run(tmp_path / "out", *common(table, store, *args))
    assert (row["evaluations"], row["trained"]) == ("4", "3")  # the promotion is found in the store
    reward = rewards(store)
    best = max(stored(store), key=lambda r: reward[r[0]])  # the first of equals, as halving promotes
    assert row["arch"] == best[0]
    assert "| random+sh |" in (tmp_path / "out" / "summary.md").read_text()


def rewards(store: Path) -> dict[str, float]:
    with sqlite3.connect(store) as conn:
        return dict(conn.execute("SELECT arch, reward FROM evaluations"))


def test_the_real_table_judges_the_returned_cells(data_dir: Path, tmp_path: Path) -> None:
    try:
        path = find_nb201_table()
    except DatasetError:
        pytest.skip("no NB201 table under $NAS_ENV_DATA")
    column = load_nb201_table(path).column("cifar10_test_acc_200ep")
    out = tmp_path / "out"
    runs = run(
        out,
        "--policies",
        "random,local_search",
        "--seeds",
        "1",
        "--time-budget",
        "1000",
        "--max-evaluations",
        "3",
    )
    for row in runs:
        accuracy = float(column[NB201Architecture.from_str(row["arch"]).index])
        assert float(row["test_acc_200ep"]) == accuracy
        assert int(row["rank"]) == 1 + int((column > accuracy).sum())
    text = (out / "summary.md").read_text()
    assert f"in {path}; rank 1 = best of 15,625" in text and "| random search | 93.70 ± 0.36 |" in text
    assert (
        "| optimum | 94.37 |" in text and "Command: `python benchmarks/bench_search.py --no-progress" in text
    )


ZC_CLIMB = (
    "--policies", "local_search", "--agent-kwargs", "local_search.start_score=live_params",
    "local_search.initial_random=1", "local_search.model_samples=1", "local_search.improvement=best",
    "local_search.neighbour_order=random", "--fidelity", "deep", "--time-budget", "1800", "--workers", "2",
)  # fmt: skip
"""docs/end_to_end.md's 30-minute recipe: a zero-cost start, then best-improvement climbing at deep."""


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_committed_zero_cost_climb_export_replays_to_its_documented_figures(
    data_dir: Path, tmp_path: Path, seed: int
) -> None:
    """Replaying each seed's measured children (no training) returns the cell docs/end_to_end.md reports."""
    try:
        find_nb201_table()
    except DatasetError:
        pytest.skip("no NB201 table under $NAS_ENV_DATA")
    measured = REPO / "benchmarks" / "measured" / f"nb201_deep_zcclimb30_s{seed}.csv"
    code = bench.main(
        ["--no-progress", *ZC_CLIMB, "--seeds", "1", "--first-seed", str(seed), "--replay", str(measured),
         "--out", str(tmp_path)]
    )  # fmt: skip
    assert code == 0
    with (tmp_path / "runs.csv").open(newline="") as f:
        [row] = list(csv.DictReader(f))
    assert (row["seed"], row["evaluations"], row["test_acc_200ep"], row["rank"]) == (
        str(seed),
        "22",
        "94.363333",
        "3",
    )


def command(*args: str) -> list[str]:
    return [sys.executable, str(SCRIPT), "--no-progress", "--fidelity", "smoke", *args]


@pytest.mark.slow
def test_command_line_with_two_worker_processes(table: str, tmp_path: Path, data_dir: Path) -> None:
    args = (
        "--table",
        table,
        "--policies",
        "random,evolution",
        "--seeds",
        "1",
        "--time-budget",
        "1000",
        "--max-evaluations",
        "2",
        "--workers",
        "2",
        "--out",
        str(tmp_path),
    )
    done = subprocess.run(command(*args), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 runs of 1000 s clock, 2 at a time" in done.stdout and "| evolution |" in done.stdout
    assert len(stored(tmp_path / "results.sqlite")) >= 2


def stop_after_three(args: tuple[str, ...], store: Path, out: Path, sig: int) -> tuple[int, str, str]:
    """Start the benchmark in its own process group, send ``sig`` to the group once 3 evaluations are
    stored; its exit code, stdout and stderr."""
    process = subprocess.Popen(
        command(*args, "--workers", "1", "--out", str(out)),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if store.exists() and len(stored(store)) >= 3:
            break
        time.sleep(0.2)
    os.killpg(process.pid, sig)
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, stdout, stderr


@pytest.mark.slow
def test_a_killed_benchmark_resumes_from_its_store(table: str, tmp_path: Path, data_dir: Path) -> None:
    store = tmp_path / "store.sqlite"
    args = common(table, store, "--time-budget", "100000", "--max-evaluations", "30")
    stop_after_three(args, store, tmp_path / "a", signal.SIGKILL)
    kept = len(stored(store))
    assert kept >= 3
    [row] = run(tmp_path / "b", *args)
    total = stored(store)
    assert row["evaluations"] == "30" and int(row["trained"]) + kept == len(total)  # nothing trained twice
    assert len({arch for arch, _, _ in total}) == len(total)


@pytest.mark.slow
def test_ctrl_c_stops_the_benchmark_and_still_exports(table: str, tmp_path: Path, data_dir: Path) -> None:
    store, exported = tmp_path / "store.sqlite", tmp_path / "measured.csv"
    budget = ("--time-budget", "100000", "--max-evaluations", "30")
    args = common(table, store, *budget, "--export", str(exported))
    # SIGINT to the group: what Ctrl-C sends to the terminal's foreground processes
    code, out, err = stop_after_three(args, store, tmp_path / "a", signal.SIGINT)
    assert code == 130, err[-3000:]
    assert f"bench_search: stopped; finished evaluations are in {store}: rerun to continue" in err
    kept = stored(store)
    assert [(r.arch, r.seconds) for r in read_measured_csv(exported)] == [(a, c) for a, _, c in kept]
    assert f"exported {len(kept)} measured evaluations to {exported}" in out


# ---- the replay file -------------------------------------------------------------------------------------


def test_measured_csv_round_trips_and_replays_only_what_it_holds(tmp_path: Path) -> None:
    cell = NB201Architecture.from_index(7)
    rows = [
        MeasuredEvaluation(cell.to_str(), "proxy", 0.1 + 0.2, 41.7, 5),
        MeasuredEvaluation(cell.to_str(), "zero_cost:live_params", None, 0.02, 0),
    ]
    path = write_measured_csv(tmp_path / "m.csv", rows, ["made by: a test"])
    assert read_measured_csv(path) == rows and path.read_text().startswith("# made by: a test\narch,")
    result = ReplayEvaluator(path, "proxy").evaluate(cell, seed=123)
    assert (result.status, result.metrics, result.cost_s, result.seed) == (
        "ok",
        {"val_accuracy": 0.1 + 0.2},
        41.7,
        5,
    )
    with pytest.raises(DatasetError, match=r"not in .* at fidelity 'proxy' \(1 rows there\)"):
        ReplayEvaluator(path, "proxy").evaluate(NB201Architecture.from_index(8), seed=0)
    with pytest.raises(
        DatasetError, match=r"has no row at fidelity 'smoke'; it has \['proxy', 'zero_cost:live_params'\]"
    ):
        ReplayEvaluator(path, "smoke")
    path.write_text(path.read_text() + f"{cell.to_str()},proxy,0.5,1.0,0\n")
    with pytest.raises(DatasetError, match="on lines 3 and 5"):
        read_measured_csv(path)


# ---- bad arguments ---------------------------------------------------------------------------------------


BAD = [
    (["--policies", "random,rnadom"], "--policies entry='rnadom' is not allowed", "Did you mean 'random'?"),
    (["--policies", "halving"], "--policies entry='halving' is not allowed", "'local_search'"),
    (
        ["--fidelity", "proxi"],
        "--fidelity='proxi' is not allowed; expected one of ['paper', 'proxy', 'deep', 'smoke']",
        "Did you mean 'proxy'?",
    ),
    (["--promote", "papr"], "--promote entry='papr' is not allowed", "Did you mean 'paper'?"),
    (["--time-budget", "0"], "--time-budget 0 must be a positive number of seconds", ""),
    (["--time-budget", "-60"], "--time-budget -60 must be a positive number of seconds", ""),
    (["--workers", "0"], "--workers 0 must be at least 1", ""),
    (["--first-seed", "-1"], "--first-seed -1 must be at least 0", ""),
    (["--replay", "nowhere.csv"], "--replay nowhere.csv: no such file (write one with --export)", ""),
    (["--import-csv", "nowhere.csv"], "--import-csv nowhere.csv: no such file (write one with --export)", ""),
    (["--import-csv", __file__, "--replay", __file__], "a --replay run trains nothing", ""),
    (
        ["--agent-kwargs", "evolution.population_size=5"],
        "--agent-kwargs evolution.population_size=5",
        "POLICY in ['random']",
    ),
    (["--agent-kwargs", "random.nonsense=1"], "--policies random", "unknown setting 'nonsense'"),
]


@pytest.mark.parametrize(("extra", "message", "hint"), BAD)
def test_bad_arguments_give_one_line(
    table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str, hint: str
) -> None:
    base = ["--out", str(tmp_path / "out"), "--table", table, "--policies", "random", "--time-budget", "60"]
    assert bench.main(["--no-progress", *base, *extra]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("bench_search: error: "), err
    assert message in err and hint in err


def test_a_missing_budget_and_a_replay_without_the_fidelity_give_one_line(
    table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["--out", str(tmp_path / "a"), "--table", table]) == 2
    assert (
        capsys.readouterr().err
        == "bench_search: error: --time-budget SECONDS is required (wall-clock seconds per run)\n"
    )
    path = write_measured_csv(
        tmp_path / "m.csv",
        [MeasuredEvaluation(NB201Architecture.from_index(0).to_str(), "proxy", 0.5, 1.0, 0)],
    )
    args = ["--out", str(tmp_path / "b"), "--table", table, "--time-budget", "60", "--replay", str(path)]
    assert bench.main([*args, "--fidelity", "smoke"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "has no row at fidelity 'smoke'; it has ['proxy']" in err
    path.write_text("arch,score\n")
    assert bench.main(args) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "expected the header arch,fidelity,score,seconds,seed" in err


# ---- the CNN space: judged by retraining -----------------------------------------------------------------


CNN = ("--env", "NAS-CIFAR10-v0", "--reference", "smoke", "--reference-seeds", "2", "--seeds", "1")


def test_the_cnn_space_retrains_what_each_search_returns_and_replays(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Random and screened random search on NAS-CIFAR10-v0 at smoke; each returned architecture is
    retrained at the reference with two training seeds, kept in the store, exported and replayed."""
    store, exported = tmp_path / "store.sqlite", tmp_path / "measured.csv"
    args = (*CNN, "--policies", "random,screened_random", "--time-budget", "1000", "--max-evaluations", "3")
    rows = run(tmp_path / "a", *args, "--store", str(store), "--export", str(exported))
    assert [(r["policy"], r["evaluations"]) for r in rows] == [("random", "3"), ("screened_random", "3")]
    for row in rows:
        per_seed = [float(row["reference_acc_s0"]), float(row["reference_acc_s1"])]
        assert all(0 <= acc <= 100 for acc in per_seed) and CnnArchitecture.from_str(row["arch"]).layers
        assert float(row["reference_acc"]) == pytest.approx(sum(per_seed) / 2)
    measured = read_measured_csv(exported)
    retrained = {(r.arch, r.fidelity) for r in measured if r.fidelity.startswith("reference=")}
    archs = {row["arch"] for row in rows}
    assert retrained == {(a, f"reference=smoke:s{s}") for a in archs for s in (0, 1)}
    assert "measured evaluations of NAS-CIFAR10-v0" in exported.read_text()
    text = (tmp_path / "a" / "summary.md").read_text()
    assert "| screened_random |" in text and "vs random, same seed" in text
    assert "Training-seed noise of the reference" in text
    # Rerunning over the store trains nothing, the retrainings included; the replay trains nothing.
    count = len(stored(store))
    again = run(tmp_path / "b", *args, "--store", str(store))
    replayed = run(tmp_path / "c", *args, "--replay", str(exported))
    assert [r["trained"] for r in again] == ["0", "0"] and len(stored(store)) == count
    for other in (again, replayed):
        for first, row in zip(rows, other, strict=True):
            for key in ("arch", "reward", "charged_s", "reference_acc_s0", "reference_acc_s1"):
                assert row[key] == first[key], key
    # A replay whose file lacks a returned architecture's retraining stops with one line.
    lines = exported.read_text().splitlines()
    exported.write_text("\n".join(line for line in lines if "reference=smoke:s1" not in line) + "\n")
    capsys.readouterr()
    code = bench.main(["--no-progress", "--fidelity", "smoke", "--workers", "1", "--out", str(tmp_path / "d"),
                       *args, "--replay", str(exported)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and "reference=smoke:s1" in err, err


CNN_BAD = [
    (
        ["--fidelity", "proxi"],
        "--fidelity='proxi' is not allowed; expected one of ['paper', 'proxy', 'smoke']",
    ),
    (["--env", "NAS-PTB-v0"], "--env='NAS-PTB-v0' is not allowed"),
    (["--table", "t.csv"], "--table applies to --env NAS-Bench-201-v0"),
    (["--reference", "proxi"], "--presets: unknown preset 'proxi'; choose from ['paper', 'proxy', 'smoke']"),
    (["--reference", "proxy:epoch=3"], "unknown field 'epoch'"),
    (["--reference-seeds", "0"], "--reference-seeds 0 must be at least 1"),
]


@pytest.mark.parametrize(("extra", "message"), CNN_BAD)
def test_bad_cnn_arguments_give_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    base = ["--out", str(tmp_path / "out"), "--env", "NAS-CIFAR10-v0", "--time-budget", "60"]
    assert bench.main(["--no-progress", *base, *extra]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("bench_search: error: ") and message in err, err


@pytest.mark.parametrize("flag", [["--reference", "long"], ["--reference-seeds", "3"]])
def test_reference_settings_on_nb201_give_one_line(
    table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: list[str]
) -> None:
    base = ["--out", str(tmp_path / "out"), "--table", table, "--time-budget", "60"]
    assert bench.main(["--no-progress", *base, *flag]) == 2
    err = capsys.readouterr().err
    assert f"{flag[0]} applies to --env NAS-CIFAR10-v0" in err and len(err.splitlines()) == 1, err
