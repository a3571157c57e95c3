"""The benchmark scripts as modules (``benchmarks/`` is not a package), so tests can call their functions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/{name}.py`` imported as the module ``name``.

    ``benchmarks/`` goes on ``sys.path`` so the script finds its sibling modules (``_fidelity_runs``...),
    as when it runs as a script; the module is registered in ``sys.modules``, where dataclasses and
    ``inspect`` look it up.
    """
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
