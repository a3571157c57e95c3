"""Seconds per child measured on this machine (nas_env.training.calibration): timed, cached, used.

Real reference children are timed at the ``smoke`` recipe (each timing is a few minibatches), in a
cache folder of the test's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nas_env.builders.cnn import build_cnn
from nas_env.evaluators.cifar import CifarTrainingEvaluator
from nas_env.search_spaces.cnn import CnnSearchSpace
from nas_env.training import calibration
from nas_env.training.recipes import FIDELITIES, bf16_is_fast


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(calibration.CACHE_ENV_VAR, str(tmp_path / "cache"))
    return tmp_path / "cache" / calibration.CACHE_FILE


def builders(count: int = 1) -> list:
    archs = calibration.reference_archs(CnnSearchSpace(num_layers=3, max_layers=3), count)
    return [lambda a=a: build_cnn(a) for a in archs]


def test_timing_is_cached_per_machine_setup(_cache: Path) -> None:
    smoke = FIDELITIES["smoke"].replace(resolution=8, batch_size=16)  # a few ms per timed step
    first = calibration.calibrate(smoke, builders(), "cnn", threads=1)
    assert set(first.seconds) == ({"fp32", "bf16"} if bf16_is_fast("cpu") else {"fp32"})
    assert all(len(v) == 1 and min(v) > 0 for v in first.seconds.values())
    low, mean, high = first.per_child()
    assert low <= mean <= high and first.fastest_precision in first.seconds
    assert calibration.calibrate(smoke, builders(), "cnn", threads=1) == first  # from the cache
    assert json.loads(_cache.read_text())[first.key]["seconds"] == first.seconds
    other = calibration.calibrate(smoke, builders(), "cnn", threads=2)  # another set-up: timed anew
    assert other.key != first.key and other.threads == 2
    assert calibration.calibrate(smoke, builders(), "cnn", threads=1, refresh=True).key == first.key
    assert first.cpu in first.key and torch.__version__ in first.key


def test_auto_precision_follows_what_this_machine_measured(_cache: Path) -> None:
    proxy = FIDELITIES["proxy"]
    assert proxy.precision == "auto"
    evaluator = CifarTrainingEvaluator(proxy, device="cpu")
    if not bf16_is_fast("cpu"):
        assert evaluator.fidelity.precision == "fp32"
        return
    cache = json.loads(_cache.read_text())
    [entry] = cache.values()
    assert evaluator.fidelity.precision == calibration.Calibration(**entry).fastest_precision
    # the same machine measuring fp32 faster (as an Intel Xeon without AMX did) makes auto choose fp32
    entry["seconds"] = {"fp32": [40.0], "bf16": [60.0]}
    _cache.write_text(json.dumps(cache))
    assert CifarTrainingEvaluator(proxy, device="cpu").fidelity.precision == "fp32"
    entry["seconds"] = {"fp32": [60.0], "bf16": [40.0]}
    _cache.write_text(json.dumps(cache))
    assert CifarTrainingEvaluator(proxy, device="cpu").fidelity.precision == "bf16"
    assert CifarTrainingEvaluator(proxy.replace(precision="fp32"), device="cpu").fidelity.precision == "fp32"
