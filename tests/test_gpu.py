"""CUDA paths: data on the device, channels_last and bf16 autocast. Skipped without a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas_env.evaluators.cifar import CifarTrainingEvaluator
from nas_env.search_spaces.cnn import CnnArchitecture
from nas_env.training.recipes import FIDELITIES


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_child_trains_on_cuda(precision: str, data_dir: Path) -> None:
    fidelity = FIDELITIES["smoke"].replace(precision=precision)
    evaluator = CifarTrainingEvaluator(fidelity, device="cuda")
    arch = CnnArchitecture.from_str("3x3:36 | 5x5:48 <0 | 3x3:64/s2 <0,1")
    first, second = evaluator.evaluate(arch, 3), evaluator.evaluate(arch, 3)
    assert first.status == "ok", first.error
    assert 0 <= first.metrics["val_accuracy"] <= 1
    assert first.metrics["val_accuracy"] == pytest.approx(second.metrics["val_accuracy"], abs=0.02)
