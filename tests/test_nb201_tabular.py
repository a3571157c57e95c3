"""The NB201 table loader and TabularEvaluator: lookups, metrics, and errors on malformed tables."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from nas_env.errors import DatasetError
from nas_env.evaluators.nb201_synthetic import synthetic_columns, table_lines, write_nb201_table
from nas_env.evaluators.tabular import (
    ACCURACY_COLUMNS,
    TabularEvaluator,
    load_nb201_table,
    train_seconds_column,
)
from nas_env.search_spaces.nb201 import NB201Architecture

ARCH = NB201Architecture.from_str(
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_nb201_table(tmp_path_factory.mktemp("nb201") / "table.csv")


def expected(column: str, arch: NB201Architecture) -> float:
    """The formula's value as written to the CSV (4 decimals), in percent."""
    return float(f"{synthetic_columns()[1][column][arch.index]:.4f}")


def test_lookups_return_the_tables_values_as_fractions(table: Path) -> None:
    evaluator = TabularEvaluator(table)
    result = evaluator.evaluate(ARCH, seed=7)
    assert result.status == "ok" and result.seed == 7 and result.num_params == 0
    assert result.metrics["val_accuracy"] == pytest.approx(expected("cifar10_valid_acc_12ep", ARCH) / 100)
    assert result.metrics["test_accuracy"] == pytest.approx(expected("cifar10_test_acc_200ep", ARCH) / 100)
    assert result.cost_s == expected("cifar10_train_seconds_12ep", ARCH)
    assert evaluator.has_train_seconds
    assert evaluator.metric_names == ("val_accuracy", "test_accuracy")


@pytest.mark.parametrize(
    ("reward_metric", "report_metric"),
    [
        ("cifar100_valid_acc_200ep", "cifar100_test_acc_200ep"),
        ("imagenet16_120_test_acc_12ep", "cifar10_valid_acc_200ep"),
    ],
)
def test_reward_and_report_metrics_pick_columns(table: Path, reward_metric: str, report_metric: str) -> None:
    evaluator = TabularEvaluator(table, reward_metric=reward_metric, report_metric=report_metric)
    rng = np.random.default_rng(0)
    for index in rng.integers(0, 15_625, 50):
        arch = NB201Architecture.from_index(int(index))
        val, test, seconds = evaluator.lookup(arch)
        assert val == pytest.approx(expected(reward_metric, arch) / 100)
        assert test == pytest.approx(expected(report_metric, arch) / 100)
        assert seconds == expected(train_seconds_column(reward_metric), arch)


def test_best_cells_are_the_tables_maxima(table: Path) -> None:
    evaluator = TabularEvaluator(table)
    _, columns = synthetic_columns()
    arch, val, test = evaluator.best_cell("reward")
    assert arch.index == int(np.argmax(np.round(columns["cifar10_valid_acc_12ep"], 4)))
    assert (val, test) == evaluator.lookup(arch)[:2]
    arch, _, test = evaluator.best_cell("report")
    assert test == pytest.approx(np.round(columns["cifar10_test_acc_200ep"], 4).max() / 100)


def test_train_seconds_column_matches_dataset_and_epochs() -> None:
    assert train_seconds_column("cifar10_valid_acc_12ep") == "cifar10_train_seconds_12ep"
    assert train_seconds_column("imagenet16_120_test_acc_200ep") == "imagenet16_120_train_seconds_200ep"
    assert len(ACCURACY_COLUMNS) == 12


def test_table_without_train_seconds_has_zero_cost(tmp_path: Path) -> None:
    lines = table_lines(extra_column=False)
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if "train_seconds" not in name]
    path = write_nb201_table(tmp_path / "t.csv", [",".join(row.split(",")[i] for i in keep) for row in lines])
    evaluator = TabularEvaluator(path)
    assert not evaluator.has_train_seconds
    assert evaluator.evaluate(ARCH, 0).cost_s == 0.0


def test_fingerprint_follows_content_and_metrics(table: Path, tmp_path: Path) -> None:
    a = TabularEvaluator(table)
    assert TabularEvaluator(table).fingerprint == a.fingerprint
    assert TabularEvaluator(table, report_metric="cifar10_valid_acc_200ep").fingerprint != a.fingerprint
    lines = table_lines()
    lines[1] = lines[1].replace(lines[1].split(",")[1], "12.3456", 1)
    other = write_nb201_table(tmp_path / "edited.csv", lines)
    assert TabularEvaluator(other).fingerprint != a.fingerprint


def test_evaluator_pickles_and_answers_the_same(table: Path) -> None:
    evaluator = TabularEvaluator(table)
    clone = pickle.loads(pickle.dumps(evaluator))
    assert clone.evaluate(ARCH, 3) == evaluator.evaluate(ARCH, 3)
    assert clone.fingerprint == evaluator.fingerprint


def test_table_is_parsed_once_per_process(table: Path) -> None:
    assert load_nb201_table(table) is load_nb201_table(str(table))


# ---- malformed tables ------------------------------------------------------------------------------


def write_edited(tmp_path: Path, edit: str) -> Path:
    lines = table_lines()
    if edit == "missing_arch_column":
        lines = [line.split(",", 1)[1] for line in lines]
    elif edit == "duplicate":
        lines[5] = lines[3]
    elif edit == "malformed":
        lines[4] = lines[4].replace("~0|+|", "~0+", 1)
    elif edit == "missing_cells":
        lines = lines[:-2]
    elif edit == "wrong_width":
        lines[7] += ",1.0"
    elif edit == "not_a_number":
        lines[9] = ",".join([lines[9].split(",")[0], "n/a", *lines[9].split(",")[2:]])
    elif edit == "fractions":
        header = lines[0].split(",")
        col = header.index("cifar10_valid_acc_12ep")
        rows = [line.split(",") for line in lines[1:]]
        for row in rows:
            row[col] = f"{float(row[col]) / 100:.6f}"
        lines = [lines[0]] + [",".join(r) for r in rows]
    return write_nb201_table(tmp_path / f"{edit}.csv", lines)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("missing_arch_column", "has no 'arch_str' column"),
        ("duplicate", "duplicate arch_str '"),
        ("malformed", "line 5: malformed arch_str: "),
        ("missing_cells", "has 15623 of the 15625 cells; 2 are missing, e.g. '|"),
        ("wrong_width", "line 8: 21 fields, header has 20"),
        ("not_a_number", "column 'cifar10_valid_acc_12ep' has an empty or non-numeric value on line 10"),
        ("fractions", "accuracies must be in percent (0-100), not fractions"),
    ],
)
def test_malformed_tables_raise_clear_errors(tmp_path: Path, edit: str, message: str) -> None:
    path = write_edited(tmp_path, edit)
    with pytest.raises(DatasetError, match=re.escape(message)):
        TabularEvaluator(path)


def test_duplicate_error_names_both_lines(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"on lines 4 and 6"):
        TabularEvaluator(write_edited(tmp_path, "duplicate"))


def test_missing_metric_column_is_named(tmp_path: Path) -> None:
    lines = table_lines()
    header = lines[0].split(",")
    drop = header.index("cifar10_test_acc_200ep")
    path = write_nb201_table(
        tmp_path / "t.csv",
        [",".join(v for i, v in enumerate(line.split(",")) if i != drop) for line in lines],
    )
    with pytest.raises(
        DatasetError, match=re.escape("has no column 'cifar10_test_acc_200ep'; its schema columns")
    ):
        TabularEvaluator(path)
    # the column is only needed when used
    assert TabularEvaluator(path, report_metric="cifar10_test_acc_12ep").evaluate(ARCH, 0).status == "ok"


def test_unknown_metric_names_suggest_the_closest(table: Path) -> None:
    with pytest.raises(ValueError, match=re.escape("reward_metric='cifar10_val_acc_12ep' is not allowed")):
        TabularEvaluator(table, reward_metric="cifar10_val_acc_12ep")
    with pytest.raises(ValueError, match=re.escape("Did you mean 'cifar100_test_acc_200ep'?")):
        TabularEvaluator(table, report_metric="cifar100_test_acc_200")


def test_missing_file_raises_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cannot be read"):
        TabularEvaluator(tmp_path / "nope.csv")
