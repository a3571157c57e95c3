"""``gym.make("NAS-Bench-201-v0")`` with no arguments: the table found under the data roots (issue 11)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import gymnasium as gym
import pytest

import nas_env  # noqa: F401 - registers the envs
from nas_env.data import paths
from nas_env.errors import DatasetError
from nas_env.evaluators.nb201_synthetic import synthetic_columns, write_nb201_table
from nas_env.evaluators.nb201_training import NB201TrainingEvaluator
from nas_env.evaluators.tabular import TabularEvaluator, find_nb201_table
from nas_env.search_spaces.nb201 import NB201Architecture

REAL_TABLE = Path(os.environ.get("NAS_ENV_DATA", "")) / "nb201" / "nb201_cifar10.csv"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_nb201_table(tmp_path_factory.mktemp("nb201") / "table.csv")


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Three empty data roots: ``$NAS_ENV_DATA``, the user cache folder, and one for ``data_dir``."""
    made = {name: tmp_path / name for name in ("env", "cache", "given")}
    for root in made.values():
        root.mkdir()
    monkeypatch.setenv(paths.DATA_ENV_VAR, str(made["env"]))
    monkeypatch.setattr(paths, "DEFAULT_ROOT", made["cache"])
    return made


def place(table: Path, root: Path, name: str = "nb201_cifar10.csv") -> Path:
    (root / "nb201").mkdir(exist_ok=True)
    return Path(shutil.copy(table, root / "nb201" / name))


def test_no_arguments_finds_the_table_under_nas_env_data(synthetic: Path, roots: dict[str, Path]) -> None:
    path = place(synthetic, roots["env"])
    env = gym.make("NAS-Bench-201-v0")
    evaluator = env.unwrapped.evaluation.evaluator
    assert isinstance(evaluator, TabularEvaluator) and evaluator.table_path == str(path.resolve())
    env.reset(seed=0)
    for action in [3, 3, 3, 1, 2, 3]:
        *_, info = env.step(action)
    arch = NB201Architecture.from_str(info["arch"])
    _, columns = synthetic_columns()
    assert info["val_accuracy"] == pytest.approx(
        columns["cifar10_valid_acc_12ep"][arch.index] / 100, abs=1e-6
    )


def test_lookup_order_data_dir_then_env_then_cache(synthetic: Path, roots: dict[str, Path]) -> None:
    cached = place(synthetic, roots["cache"])
    assert find_nb201_table() == cached
    in_env = place(synthetic, roots["env"])
    assert find_nb201_table() == in_env
    given = place(synthetic, roots["given"])
    assert find_nb201_table(roots["given"]) == given
    full = place(synthetic, roots["env"], "nb201.csv")  # the converter's full table wins in its root
    assert find_nb201_table() == full
    env = gym.make("NAS-Bench-201-v0", data_dir=str(roots["given"]))
    assert env.unwrapped.evaluation.evaluator.table_path == str(given.resolve())


def test_missing_table_names_every_path_tried_and_the_fix(roots: dict[str, Path]) -> None:
    with pytest.raises(DatasetError) as info:
        gym.make("NAS-Bench-201-v0", data_dir=str(roots["given"]))
    message = str(info.value)
    for root in ("given", "env", "cache"):
        for name in ("nb201.csv", "nb201_cifar10.csv"):
            assert str(roots[root] / "nb201" / name) in message
    assert "nas-bench-table --nats PATH" in message and "table_path=None trains" in message


def test_trained_mode_when_asked_for(roots: dict[str, Path]) -> None:
    """No table needed for training: ``table_path=None``, or a fidelity given with the default path."""
    for kwargs in ({"table_path": None}, {"fidelity": "smoke"}, {"test_images": 10, "fidelity": "smoke"}):
        env = gym.make("NAS-Bench-201-v0", **kwargs)
        assert isinstance(env.unwrapped.evaluation.evaluator, NB201TrainingEvaluator)


def test_data_dir_with_an_explicit_table_raises(synthetic: Path, tmp_path: Path) -> None:
    message = (
        f"data_dir={str(tmp_path)!r} only applies in trained mode (table_path=None) or to find the "
        "default table (table_path='auto')"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        gym.make("NAS-Bench-201-v0", table_path=str(synthetic), data_dir=str(tmp_path))


@pytest.mark.skipif(not REAL_TABLE.is_file(), reason="no real NB201 table under $NAS_ENV_DATA")
def test_real_table_out_of_the_box() -> None:
    """The table under ``$NAS_ENV_DATA`` (CI: ../shared/data) is found; a known row reads back."""
    env = gym.make("NAS-Bench-201-v0")
    assert env.unwrapped.evaluation.evaluator.table_path == str(REAL_TABLE.resolve())
    env.reset(seed=0)
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    for token in NB201Architecture.from_str(arch).tokens:
        *_, reward, _, _, info = env.step(token)
    assert info["arch"] == arch
    assert reward == pytest.approx(0.82834) and info["test_accuracy"] == pytest.approx(0.9366)
