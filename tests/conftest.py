"""Shared test set-up: real data under $NAS_ENV_DATA (default: ../shared/data beside the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("NAS_ENV_DATA", str(REPO.parent / "shared" / "data"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu`` tests cleanly where CUDA is absent."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data root; fails (not skips) when CIFAR-10 is missing, since CI must have it."""
    root = Path(os.environ["NAS_ENV_DATA"])
    assert (root / "cifar-10-batches-py" / "data_batch_1").is_file(), f"CIFAR-10 not found under {root}"
    return root
