"""nas-benchmark: outputs, reproducibility, time budgets and errors, on the synthetic NB201 table."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nas_env.evaluators.nb201_synthetic import write_nb201_table
from nas_env.evaluators.tabular import TabularEvaluator
from nas_env.search_spaces.nb201 import NB201Architecture
from scripts.benchmark import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_nb201_table(tmp_path_factory.mktemp("nb201") / "table.csv"))


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def args(table: str, out: Path, *extra: str) -> list[str]:
    return [
        "--env",
        "NAS-Bench-201-v0",
        "--env-kwargs",
        f"table_path={table}",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def check_runs(rows: list[dict[str, str]], table: str) -> None:
    """Every row is the table's value for its arch, and the best-so-far columns follow the rewards."""
    evaluator = TabularEvaluator(table)
    best: dict[tuple[str, str], tuple[float, float]] = {}
    for row in rows:
        val, test, seconds = evaluator.lookup(NB201Architecture.from_str(row["arch"]))
        assert float(row["reward"]) == val and float(row["test_accuracy"]) == test
        assert float(row["train_seconds"]) == seconds
        key = (row["policy"], row["seed"])
        if key not in best or val > best[key][0]:
            best[key] = (val, test)
        assert (float(row["best_reward"]), float(row["best_test_accuracy"])) == best[key]


def test_benchmark_writes_three_files_and_reruns_identically(table: str, tmp_path: Path) -> None:
    policies = "reinforce,evolution,random"
    extra = ("--policies", policies, "--seeds", "2", "--budget", "24", "--report-at", "8,24")
    command = [
        sys.executable,
        "-m",
        "scripts.benchmark",
        *args(table, tmp_path / "a", *extra),
        "--workers",
        "2",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "a"
    rows = read_rows(out / "runs.csv")
    assert list(rows[0]) == [
        "policy",
        "seed",
        "index",
        "arch",
        "reward",
        "test_accuracy",
        "train_seconds",
        "total_train_seconds",
        "best_reward",
        "best_test_accuracy",
    ]
    assert len(rows) == 3 * 2 * 24
    assert [(r["policy"], r["seed"], r["index"]) for r in rows[:2]] == [
        ("reinforce", "0", "0"),
        ("reinforce", "0", "1"),
    ]
    check_runs(rows, table)
    summary = (out / "summary.md").read_text()
    for policy in policies.split(","):
        assert f"| {policy} | " in summary
    assert (
        "test_accuracy (%) @ 8 |" in summary
        and "Best possible: the cell with the best search reward" in summary
    )
    assert summary in done.stdout
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "config.json").is_file()

    # Same arguments, run in this process instead of two workers: the same runs.csv, byte for byte.
    assert main(args(table, tmp_path / "b", *extra, "--workers", "1")) == 0
    assert (tmp_path / "b" / "runs.csv").read_bytes() == (out / "runs.csv").read_bytes()


def test_time_budget_counts_simulated_training_seconds(table: str, tmp_path: Path) -> None:
    extra = ("--policies", "random,ppo", "--seeds", "1", "--time-budget", "5000", "--workers", "1")
    assert main(args(table, tmp_path, *extra)) == 0
    rows = read_rows(tmp_path / "runs.csv")
    check_runs(rows, table)
    for policy in ("random", "ppo"):
        totals = [float(r["total_train_seconds"]) for r in rows if r["policy"] == policy]
        assert 5 <= len(totals) and totals[-1] <= 5000
        assert (
            totals == sorted(totals) and totals[-1] > 5000 - 12 * 12 * 7
        )  # the next cell (<= 1008 s) did not fit
    assert "@ 5000s |" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--policies", "reinforce,randm", "--budget", "5"), "Did you mean 'random'?"),
        (("--policies", "random", "--budget", "0"), "--budget 0 must be a positive number"),
        (
            (
                "--policies",
                "random",
            ),
            "give --budget N (architectures per run) or --time-budget SECONDS",
        ),
        (("--budget", "5", "--agent-kwargs", "batch_size=4"), "keys are POLICY.KEY"),
        (("--budget", "5", "--agent-kwargs", "reinforce.batch_sise=4"), "Did you mean 'batch_size'?"),
        (("--budget", "5", "--report-at", "3,9"), "each budget must be in (0, 5]"),
        (("--budget", "5", "--env-kwargs", "table_path=/nonexistent.csv"), "cannot be read"),
    ],
)
def test_bad_arguments_fail_before_any_work(
    table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], message: str
) -> None:
    argv = args(table, tmp_path / "out", *extra)
    if "--env-kwargs" in extra:
        argv = argv[4:]  # the test's own --env-kwargs replaces the table
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_time_budget_needs_train_seconds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nas_env.evaluators.nb201_synthetic import table_lines

    lines = table_lines(extra_column=False)
    keep = [i for i, name in enumerate(lines[0].split(",")) if "train_seconds" not in name]
    path = write_nb201_table(
        tmp_path / "t.csv", [",".join(line.split(",")[i] for i in keep) for line in lines]
    )
    assert main(args(str(path), tmp_path / "out", "--policies", "random", "--time-budget", "100")) == 2
    assert "--time-budget needs simulated training seconds" in capsys.readouterr().err


def test_all_policies_with_published_figures(table: str, tmp_path: Path) -> None:
    """``--policies all`` runs every registered policy that runs with its defaults, names the others,
    and puts NB201's published figure beside random search, REA and NB201's REINFORCE."""
    from agents import AGENT_NAMES

    extra = ("--policies", "all", "--seeds", "1", "--budget", "12", "--workers", "1")
    assert main(args(table, tmp_path, *extra)) == 0
    summary = (tmp_path / "summary.md").read_text()
    ran = {row["policy"] for row in read_rows(tmp_path / "runs.csv")}
    assert {"random", "evolution", "reinforce_nb201", "local_search", "reinforce"} <= ran
    for policy in AGENT_NAMES:
        assert (f"| {policy} | " in summary) == (policy in ran)
        assert (policy in ran) != (f"Skipped `{policy}`" in summary)
    assert "| NB201 published |" in summary.splitlines()[4]
    rows = {line.split(" | ")[0][2:]: line for line in summary.splitlines() if line.startswith("| ")}
    assert rows["random"].endswith("| 93.70 ± 0.36 |") and rows["evolution"].endswith("| 93.92 ± 0.30 |")
    assert rows["reinforce_nb201"].endswith("| 93.85 ± 0.37 |") and rows["local_search"].endswith("| - |")
    # one unit: the search reward (an accuracy here) is in percent, as the reported accuracy
    header = summary.splitlines()[4].split(" | ")
    assert "best search reward (%)" in header and "distinct archs" in header
    for name, line in rows.items():
        if name in ran:
            reward = float(line.split(" | ")[header.index("best search reward (%)")].split(" ± ")[0])
            assert 1 < reward <= 100
    # identical policies are explained: PPO never updates within 12 x 6 steps (n_steps=2048)
    assert "`ppo` and `maskable_ppo` evaluated the same architectures in every seed: PPO" in summary
    runs = read_rows(tmp_path / "runs.csv")
    assert [r["arch"] for r in runs if r["policy"] == "ppo"] == [
        r["arch"] for r in runs if r["policy"] == "maskable_ppo"
    ]


def test_progress_bar_counts_whole_architectures_and_help_has_no_double_backslash(
    table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a for a in args(table, tmp_path, "--policies", "random,evolution", "--seeds", "2",
                            "--budget", "7", "--workers", "1") if a != "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "28/28" in err and not re.search(r"\d\.\d+/28", err)
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "\\\\" not in text and "table_path=nb201.csv \\\n" in text


@pytest.mark.parametrize(
    ("setting", "published"),
    [
        ("report_metric=cifar10_valid_acc_200ep", None),
        ("reward_metric=cifar10_test_acc_12ep", None),  # NB201 searched on 12-epoch validation
        ("reward_metric=cifar100_valid_acc_12ep", None),  # reported on another dataset
        ("report_metric=cifar100_test_acc_200ep", None),
        ("reward_metric=cifar100_valid_acc_12ep report_metric=cifar100_test_acc_200ep", "71.04 ± 1.07"),
    ],
)
def test_published_figures_only_for_nb201s_own_setting(
    table: str, tmp_path: Path, setting, published
) -> None:
    extra = ("--policies", "random", "--seeds", "1", "--budget", "5", "--workers", "1")
    argv = args(table, tmp_path, *extra)
    argv[4:4] = setting.split()  # more --env-kwargs entries
    assert main(argv) == 0
    summary = (tmp_path / "summary.md").read_text()
    assert ("NB201 published" in summary) == (published is not None)
    assert published is None or f"| {published} |" in summary
