"""``nas-bench-table``: NATS-Bench topology records -> the package's NB201 table (small fake API)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import pytest

import nas_env
from nas_env.evaluators.tabular import ACCURACY_COLUMNS, TRAIN_SECONDS_COLUMNS, TabularEvaluator
from nas_env.search_spaces.nb201 import NUM_CELLS, NB201Architecture
from scripts import convert_nats

HP = ("12", "200")


class FakeNATS:
    """NATS-Bench's topology API as the converter sees it, with the record layout of ``get_more_info``.

    Values are made up from the index, dataset and ``hp`` so that each column is recognisable; the
    keys per dataset are NATS-Bench's (``cifar10-valid`` has no test accuracy here, ``cifar10`` no
    validation accuracy, the others both). Cells are listed in a shuffled order, as the API's
    index is not this package's cell index.
    """

    DATASETS: ClassVar[dict[str, float]] = {
        "cifar10-valid": 1.0,
        "cifar10": 2.0,
        "cifar100": 3.0,
        "ImageNet16-120": 4.0,
    }

    def __init__(self) -> None:
        self.archs = [NB201Architecture.from_index((i * 7919) % NUM_CELLS).to_str() for i in range(NUM_CELLS)]
        self.calls: list[tuple[int, str, str, bool]] = []

    def __len__(self) -> int:
        return len(self.archs)

    def arch(self, index: int) -> str:
        return self.archs[index]

    def get_more_info(
        self, index: int, dataset: str, iepoch=None, hp: str = "12", is_random: bool = True
    ) -> dict[str, Any]:
        self.calls.append((index, dataset, hp, is_random))
        base = 10 + (index % 50) + self.DATASETS[dataset] + (20 if hp == "200" else 0)
        info = {
            "train-loss": 0.5,
            "train-accuracy": base + 5,
            "train-all-time": 100.0 * self.DATASETS[dataset] + int(hp),
        }
        if dataset != "cifar10":
            info["valid-accuracy"] = base + 0.25
        if dataset != "cifar10-valid":
            info["test-accuracy"] = base + 0.5
        return info


def expected(index: int, column: str) -> float:
    dataset, hp, key = convert_nats.column_sources()[column]
    base = 10 + (index % 50) + FakeNATS.DATASETS[dataset] + (20 if hp == "200" else 0)
    return {
        "valid-accuracy": base + 0.25,
        "test-accuracy": base + 0.5,
        "train-all-time": 100.0 * FakeNATS.DATASETS[dataset] + int(hp),
    }[key]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[FakeNATS, Path]:
    api = FakeNATS()
    return api, convert_nats.write_table(api, tmp_path_factory.mktemp("nats") / "nb201" / "nb201.csv")


def test_every_column_comes_from_the_documented_record(converted) -> None:
    api, path = converted
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["arch_index", "arch_str", *ACCURACY_COLUMNS, *TRAIN_SECONDS_COLUMNS]
    assert len(rows) == NUM_CELLS
    for index in (0, 1, 4321, NUM_CELLS - 1):
        row = rows[index]
        assert int(row["arch_index"]) == index and row["arch_str"] == api.arch(index)
        for column in (*ACCURACY_COLUMNS, *TRAIN_SECONDS_COLUMNS):
            assert float(row[column]) == expected(index, column), column
    # means over NATS-Bench's seeds, one call per (dataset, hp) and cell
    assert {c[3] for c in api.calls} == {False}
    assert len(api.calls) == NUM_CELLS * 4 * 2


def test_the_table_drives_the_env_on_every_dataset(converted) -> None:
    api, path = converted
    for dataset in ("cifar10", "cifar100", "imagenet16_120"):
        env = gym.make(
            "NAS-Bench-201-v0",
            table_path=str(path),
            reward_metric=f"{dataset}_valid_acc_12ep",
            report_metric=f"{dataset}_test_acc_200ep",
        )
        env.reset(seed=0)
        arch = NB201Architecture.from_str(api.arch(17))
        for token in arch.tokens:
            *_, reward, _, _, info = env.step(token)
        assert reward == pytest.approx(expected(17, f"{dataset}_valid_acc_12ep") / 100)
        assert info["test_accuracy"] == pytest.approx(expected(17, f"{dataset}_test_acc_200ep") / 100)
        assert info["train_seconds"] == expected(17, f"{dataset}_train_seconds_12ep")
        assert isinstance(env.unwrapped.evaluation.evaluator, TabularEvaluator)


def test_an_api_without_all_cells_is_refused(tmp_path: Path) -> None:
    api = FakeNATS()
    api.archs = api.archs[:100]
    with pytest.raises(
        nas_env.errors.NASEnvError, match="holds 100 architectures; the topology space has 15625"
    ):
        convert_nats.write_table(api, tmp_path / "t.csv")
    assert not (tmp_path / "t.csv").exists()


def test_missing_nats_bench_is_a_one_line_error(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "nats_bench", None)  # import fails as if absent
    assert (
        convert_nats.main(["--nats", str(tmp_path), "--out", str(tmp_path / "t.csv"), "--no-progress"]) == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("nas-bench-table: error: ") and 'pip install "nas-env[nats]"' in err
