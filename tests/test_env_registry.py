"""Every registered NAS env takes the same evaluation-backend keywords and rejects bad ones clearly."""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium as gym
import pytest

import nas_env  # noqa: F401

SMALL_KWARGS = {
    "NAS-CIFAR10-v0": {"num_layers": 1, "max_layers": 1, "fidelity": "smoke"},
    "NAS-Bench-201-v0": {"fidelity": "smoke"},
    "NAS-PTB-v0": {"base": 2, "fidelity": "smoke"},
}


@pytest.mark.parametrize("env_id", sorted(SMALL_KWARGS))
def test_backend_keyword_is_accepted_and_checked(env_id: str, data_dir: Path) -> None:
    env = gym.make(env_id, backend="local", backend_kwargs={}, **SMALL_KWARGS[env_id])
    assert env.unwrapped.evaluation.backend is not None
    env.close()
    message = "backend='rey' is not allowed; expected one of ['local', 'pool', 'ray']. Did you mean 'ray'?"
    with pytest.raises(ValueError, match=re.escape(message)):
        gym.make(env_id, backend="rey", **SMALL_KWARGS[env_id])
