"""CIFAR-10 in the official Python layout, loaded into memory as uint8 tensors.

The paper's split (section 4.1): 45,000 training and 5,000 validation images drawn once from the
50,000 training images with a fixed seed. The test set is loaded only when asked for.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from nas_env.data.paths import data_roots, download, extract_tar
from nas_env.errors import DatasetError

CIFAR_DIRNAME = "cifar-10-batches-py"
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
NUM_VALID = 5000
SPLIT_SEED = 0
"""Seed of the fixed 45k/5k permutation; changing it changes every cached reward."""
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
"""Per-channel normalisation (the commonly used CIFAR-10 training-set statistics)."""


@dataclass(frozen=True)
class CifarSplits:
    """CIFAR-10 as uint8 NCHW tensors and int64 labels."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    valid_x: torch.Tensor
    valid_y: torch.Tensor
    test_x: torch.Tensor | None = None
    test_y: torch.Tensor | None = None


def _load_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, KeyError, EOFError, ValueError, TypeError) as exc:
        raise DatasetError(
            f"CIFAR-10 file {path} is unreadable or corrupt ({exc!r}); delete "
            f"{path.parent} and let nas_env download it again, or copy the official files there"
        ) from exc
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data) or labels.max(initial=0) > 9:
        raise DatasetError(f"CIFAR-10 file {path} has unexpected contents (data shape {data.shape})")
    return data.reshape(-1, 3, 32, 32), labels


def find_cifar10(data_dir: str | os.PathLike[str] | None = None, download_missing: bool = True) -> Path:
    """Return the ``cifar-10-batches-py`` folder, downloading it when absent and allowed.

    Raises:
        DatasetError: Not found (and not downloadable); the message lists the paths tried.
    """
    roots = data_roots(data_dir)
    tried = [root / CIFAR_DIRNAME for root in roots]
    for folder in tried:
        if all((folder / name).is_file() for name in (*TRAIN_FILES, TEST_FILE)):
            return folder
    where = (
        "CIFAR-10 not found; looked for data_batch_1..5 and test_batch in "
        + ", ".join(str(p) for p in tried)
        + f". Set NAS_ENV_DATA (or data_dir=) to the folder holding {CIFAR_DIRNAME}/"
    )
    if download_missing:
        root = roots[0]
        try:
            archive = download(CIFAR_URL, root / "cifar-10-python.tar.gz", CIFAR_MD5)
        except DatasetError as exc:  # offline: say where the data is looked for, not only the URL
            raise DatasetError(f"{where}; the download failed ({exc}); download=False skips it") from None
        extract_tar(archive, root)
        archive.unlink()
        return root / CIFAR_DIRNAME
    raise DatasetError(f"{where}, or allow the download from {CIFAR_URL} (download=True)")


@lru_cache(maxsize=4)
def _load_cached(folder: str, with_test: bool) -> CifarSplits:
    parts = [_load_batch(Path(folder) / name) for name in TRAIN_FILES]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    valid_idx, train_idx = np.sort(perm[:NUM_VALID]), np.sort(perm[NUM_VALID:])
    test_x = test_y = None
    if with_test:
        tx, ty = _load_batch(Path(folder) / TEST_FILE)
        test_x, test_y = torch.from_numpy(tx), torch.from_numpy(ty)
    return CifarSplits(
        train_x=torch.from_numpy(x[train_idx]),
        train_y=torch.from_numpy(y[train_idx]),
        valid_x=torch.from_numpy(x[valid_idx]),
        valid_y=torch.from_numpy(y[valid_idx]),
        test_x=test_x,
        test_y=test_y,
    )


def load_cifar10(
    data_dir: str | os.PathLike[str] | None = None,
    with_test: bool = False,
    download_missing: bool = True,
) -> CifarSplits:
    """Load CIFAR-10 with the paper's fixed 45,000/5,000 split (cached per process).

    Args:
        data_dir: Root holding ``cifar-10-batches-py/``; defaults to ``$NAS_ENV_DATA``.
        with_test: Also load the 10,000 test images (only for retraining, never for rewards).
        download_missing: Download the official archive (md5-checked) when the files are absent.

    Raises:
        DatasetError: The data is missing or corrupt.
    """
    folder = find_cifar10(data_dir, download_missing)
    return _load_cached(str(folder.resolve()), with_test)
