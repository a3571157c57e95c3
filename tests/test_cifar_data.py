"""CIFAR-10 loading: the paper's fixed split, clear errors for missing or corrupt data."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

from nas_env.data.cifar import CIFAR_DIRNAME, load_cifar10
from nas_env.errors import DatasetError


def test_paper_split_is_fixed_and_disjoint(data_dir: Path) -> None:
    data = load_cifar10(data_dir, download_missing=False)
    assert data.train_x.shape == (45_000, 3, 32, 32) and data.train_x.dtype == torch.uint8
    assert data.valid_x.shape == (5_000, 3, 32, 32)
    assert data.test_x is None  # the test set only when asked for
    counts = torch.bincount(torch.cat([data.train_y, data.valid_y]), minlength=10)
    assert counts.tolist() == [5000] * 10
    again = load_cifar10(data_dir, download_missing=False)
    assert torch.equal(again.valid_y, data.valid_y)
    with_test = load_cifar10(data_dir, with_test=True, download_missing=False)
    assert with_test.test_x is not None and with_test.test_x.shape == (10_000, 3, 32, 32)
    assert torch.equal(with_test.train_x[:100], data.train_x[:100])


def test_missing_data_names_the_paths_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path / CIFAR_DIRNAME))):
        load_cifar10(tmp_path, download_missing=False)
    monkeypatch.setenv("NAS_ENV_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(DatasetError, match="Set NAS_ENV_DATA"):
        load_cifar10(download_missing=False)


def test_corrupt_file_gives_a_clear_error(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / CIFAR_DIRNAME
    shutil.copytree(data_dir / CIFAR_DIRNAME, folder)
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match=r"data_batch_3 is unreadable or corrupt"):
        load_cifar10(tmp_path, download_missing=False)
