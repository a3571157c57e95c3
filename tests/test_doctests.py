"""Every documentation example runs."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

MODULES = ["nas_env.envs.cifar10", "nas_env.search_spaces.cnn"]


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name: str, data_dir: Path) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
