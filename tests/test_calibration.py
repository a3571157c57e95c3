"""Seconds per child measured on this machine (nas_env.training.calibration): timed, cached, used.

Real reference children are timed at the ``smoke`` recipe (each timing is two to four minibatches), in a
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


def count_forward_passes(model: torch.nn.Module) -> list[int]:
    calls = [0]
    model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize(("time_box", "passes"), [(None, 4), (0.0, 2), (1e9, 4)])
def test_a_time_box_stops_after_the_first_timed_step_past_it(time_box, passes) -> None:
    """A warm-up, then 3 steps, or fewer once the time box is spent (never fewer than one)."""
    from nas_env.training.cifar import measure_seconds_per_child

    [build] = builders()
    model = build()
    calls = count_forward_passes(model)
    smoke = FIDELITIES["smoke"].replace(resolution=8, batch_size=16)
    assert measure_seconds_per_child(model, smoke, "cpu", steps=3, batch=8, time_box=time_box) > 0
    assert calls[0] == passes


def test_language_models_are_timed_on_their_own_minibatch_shape() -> None:
    """PTB's recipe has no precision and no images: fp32 only, tokens of the recipe's shape."""
    from nas_env.builders.language_model import build_language_model
    from nas_env.search_spaces.rnn_cell import RnnCellSearchSpace
    from nas_env.training.ptb import PTB_FIDELITIES

    smoke = PTB_FIDELITIES["smoke"].replace(hidden_size=8)
    archs = calibration.reference_archs(RnnCellSearchSpace(base=2), 2)
    models = [lambda a=a: build_language_model(a, 10_000, 8, 2, 0.0, 0.1) for a in archs]
    measure = calibration.time_language_model
    timed = calibration.calibrate(smoke, models, "ptb", threads=1, measure=measure)
    assert set(timed.seconds) == {"fp32"} and len(timed.seconds["fp32"]) == 2 and not timed.cached
    assert calibration.calibrate(smoke, models, "ptb", threads=1, measure=measure).cached
    assert calibration.METHOD in timed.key
