"""Issue 23: a missing dataset surfaces at ``gym.make`` or ``reset``, not after the last token.

Issue 23 ("The first ten minutes: what a new user sees"): without data, the README's snippet got
through ``gym.make`` and every token, then failed at the last step. Each env
now looks for its files when it is made (``download=False``) or at its first reset (where it
downloads them with ``download=True``), and the one error says what to set: ``NAS_ENV_DATA``,
``data_dir=`` and ``download=``. No network is used: downloads go to a port nothing listens on.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest

import nas_env  # noqa: F401  (registers the ids)
from nas_env.data import cifar, paths, ptb
from nas_env.errors import DatasetError

TRAINED = [
    ("NAS-CIFAR10-v0", {"fidelity": "smoke"}),
    ("NAS-CIFAR10-v0", {"weight_sharing": True}),
    ("NAS-CIFAR10-v0", {"fidelity": "zero_cost"}),
    ("NAS-PTB-v0", {"fidelity": "smoke"}),
    ("NAS-PTB-v0", {"fidelity": "zero_cost"}),
    ("NAS-Bench-201-v0", {"fidelity": "smoke"}),
]
"""Every way the three envs read a dataset (training, shared weights, a zero-cost minibatch)."""


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data root as ``$NAS_ENV_DATA`` and as the user cache; dead download addresses."""
    root = tmp_path / "empty"
    root.mkdir()
    monkeypatch.setenv(paths.DATA_ENV_VAR, str(root))
    monkeypatch.setattr(paths, "DEFAULT_ROOT", root)
    monkeypatch.setattr(cifar, "CIFAR_URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")  # nothing listens
    monkeypatch.setattr(ptb, "PTB_URL", "http://127.0.0.1:9/")
    return root


def says_how_to_fix(message: str) -> bool:
    return all(word in message for word in ("NAS_ENV_DATA", "data_dir=", "download="))


@pytest.mark.parametrize(("env_id", "kwargs"), TRAINED)
def test_issue_23_no_download_fails_at_make(env_id, kwargs, empty: Path) -> None:
    with pytest.raises(DatasetError) as info:
        gym.make(env_id, data_dir=str(empty), download=False, **kwargs)
    assert "\n" not in str(info.value) and str(empty) in str(info.value)
    assert says_how_to_fix(str(info.value)), info.value


@pytest.mark.parametrize(("env_id", "kwargs"), TRAINED)
def test_issue_23_a_failed_download_fails_at_the_first_reset(env_id, kwargs, empty: Path) -> None:
    env = gym.make(env_id, **kwargs)  # download=True: the attempt waits for reset
    with pytest.raises(DatasetError, match="the download failed") as info:
        env.reset(seed=0)
    assert "\n" not in str(info.value) and says_how_to_fix(str(info.value)), info.value
    env.close()


def test_issue_23_the_nb201_table_is_looked_for_at_make(empty: Path) -> None:
    """Table mode reads no images: a missing table fails at make, naming where it was looked for."""
    with pytest.raises(DatasetError) as info:
        gym.make("NAS-Bench-201-v0")
    message = str(info.value)
    assert str(empty / "nb201" / "nb201_cifar10.csv") in message
    assert "NAS_ENV_DATA" in message and "data_dir=" in message and "download=" in message


def test_issue_23_present_data_is_checked_once_and_the_episode_runs(data_dir: Path) -> None:
    env = gym.make("NAS-CIFAR10-v0", num_layers=1, max_layers=1, fidelity="smoke", data_dir=str(data_dir))
    env.reset(seed=0)
    assert env.unwrapped._data_checked
    for _ in range(3):
        *_, terminated, _, info = env.step(0)
    assert terminated and info["eval_status"] == "ok"
    env.close()
