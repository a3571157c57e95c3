"""Fidelity presets (nas_env/training/recipes.py): resolution, auto precision, NB201's reduced proxy
network, the announced cost of ``paper`` on CPU, and bad recipes. Real CIFAR-10, tiny recipes."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import gymnasium as gym
import pytest
import torch

import nas_env  # noqa: F401
from nas_env.builders.cnn import build_cnn
from nas_env.builders.nb201 import InferCell
from nas_env.data.cifar import load_cifar10
from nas_env.evaluators.cifar import CifarTrainingEvaluator
from nas_env.evaluators.nb201_training import NB201TrainingEvaluator
from nas_env.search_spaces.cnn import CnnArchitecture
from nas_env.search_spaces.nb201 import NB201Architecture
from nas_env.training.cifar import downsample, train_child
from nas_env.training.recipes import FIDELITIES, NB201_FIDELITIES, TRAINER_VERSION, Fidelity, bf16_is_fast


def test_auto_precision_is_resolved_per_device_and_keys_the_cache() -> None:
    proxy = FIDELITIES["proxy"]
    assert proxy.precision == "auto" and proxy.resolution == 16 and TRAINER_VERSION == 2
    cpu = proxy.resolved("cpu")
    assert cpu.precision == ("bf16" if bf16_is_fast("cpu") else "fp32")
    assert proxy.resolved("cuda").precision == "fp32"  # measured slower on GPUs for these children
    assert FIDELITIES["paper"].resolved("cpu") is FIDELITIES["paper"]  # concrete recipes pass through
    evaluator = CifarTrainingEvaluator("proxy", device="cpu")
    assert evaluator.fidelity == cpu
    as_fp32 = CifarTrainingEvaluator(proxy.replace(precision="fp32"), device="cpu")
    assert (evaluator.fingerprint == as_fp32.fingerprint) == (cpu.precision == "fp32")


def test_downsample_averages_2x2_blocks() -> None:
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).reshape(2, 3, 4, 4)
    small = downsample(x, 2)
    assert small.dtype == torch.uint8 and small.shape == (2, 3, 2, 2)
    expected = x.float().reshape(2, 3, 2, 2, 2, 2).mean((3, 5)).round()
    assert torch.equal(small.float(), expected)
    assert downsample(x, 4) is x


def test_train_child_at_16px_scores_only_the_reward_epochs(data_dir: Path) -> None:
    data = load_cifar10(data_dir)
    arch = CnnArchitecture.from_str("3x3:24 | 3x3:24 <0")
    torch.manual_seed(0)
    model = build_cnn(arch)
    shapes: list[tuple[int, ...]] = []
    model.register_forward_pre_hook(lambda _m, args: shapes.append(tuple(args[0].shape)))
    fid = Fidelity(
        epochs=3, train_images=256, valid_images=200, batch_size=64, reward_epochs=2, resolution=16
    )
    report = train_child(model, data, fid, seed=1)
    assert len(report.val_accuracies) == 2 and all(0 <= a <= 1 for a in report.val_accuracies)
    assert {s[1:] for s in shapes} == {(3, 16, 16)}
    torch.manual_seed(0)
    again = train_child(build_cnn(arch), data, fid, seed=1)
    assert again.val_accuracies == report.val_accuracies  # same seed, same report


def test_nb201_proxy_and_deep_train_reduced_networks_and_paper_the_full_one() -> None:
    cell = NB201Architecture.from_index(1234)
    proxy = NB201TrainingEvaluator("proxy", device="cpu")
    assert (proxy.channels, proxy.cells_per_stage) == (16, 1)
    assert proxy.fidelity == NB201_FIDELITIES["proxy"].resolved("cpu")
    cells = [m for m in proxy.build_model(cell).modules() if isinstance(m, InferCell)]
    assert len(cells) == 3
    full = NB201TrainingEvaluator(Fidelity(epochs=1, train_images=64), device="cpu")
    assert len([m for m in full.build_model(cell).modules() if isinstance(m, InferCell)]) == 15
    wider = NB201TrainingEvaluator("proxy", device="cpu", channels=32)
    # deep: proxy's recipe on 8 channels and 3 cells per stage, its own cache key
    deep = NB201TrainingEvaluator("deep", device="cpu")
    assert (deep.channels, deep.cells_per_stage) == (8, 3) and deep.fidelity == proxy.fidelity
    assert len([m for m in deep.build_model(cell).modules() if isinstance(m, InferCell)]) == 9
    fingerprints = {proxy.fingerprint, full.fingerprint, wider.fingerprint, deep.fingerprint}
    assert len(fingerprints) == 4
    env = gym.make("NAS-Bench-201-v0", table_path=None, fidelity="deep", device="cpu")
    assert env.unwrapped.evaluation.evaluator.fingerprint == deep.fingerprint
    env.close()


def test_paper_on_cpu_announces_the_hours_per_child() -> None:
    with pytest.warns(UserWarning, match=r"takes about [\d.]+ h per child on this CPU") as caught:
        gym.make("NAS-CIFAR10-v0", fidelity="paper", device="cpu").close()
    assert "Use fidelity='proxy' on CPU" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym.make("NAS-CIFAR10-v0", fidelity="proxy", device="cpu").close()  # light: no timing, no warning


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"resolution": 24}, "Fidelity.resolution=24 is not allowed; expected one of [32, 16, 8]"),
        (
            {"precision": "fp16"},
            "Fidelity.precision='fp16' is not allowed; expected one of ['fp32', 'bf16', 'auto']",
        ),
        ({"resolution": 16, "epochs": 0}, "Fidelity.epochs=0 must be a positive integer"),
    ],
)
def test_bad_recipes_name_the_value(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Fidelity(**changes)


def test_bad_nb201_network() -> None:
    with pytest.raises(ValueError, match="cells_per_stage"):
        NB201TrainingEvaluator("proxy", cells_per_stage=0)
