"""Regression fixture of issue 22: cache keys and seeded search results recorded before the redesign.

``python tests/golden.py`` (from the repository root, ``NAS_ENV_DATA`` set) rewrites
``tests/fixtures/golden_22.json`` from the current code; ``tests/test_issue_22_golden.py``
recomputes every value and compares it bit for bit (floats travel as ``float.hex``). Only a
deliberate change of a cache key or a reward may regenerate it.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
from synthetic import make_synthetic_env

import nas_env  # noqa: F401 - registers the envs
from agents import make_agent
from nas_env.evaluators.cifar import CifarTrainingEvaluator
from nas_env.evaluators.nb201_synthetic import write_nb201_table
from nas_env.evaluators.nb201_training import NB201_NETWORKS, NB201TrainingEvaluator
from nas_env.threads import torch_threads
from nas_env.training.recipes import FIDELITIES, NB201_FIDELITIES

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "golden_22.json"
REAL_TABLE = "nb201/nb201_cifar10.csv"
VOLATILE = frozenset({"train_seconds", "cost_s"})
"""Info keys that measure wall-clock time in trained episodes (table costs are table values: kept)."""

FINGERPRINT_ENVS: dict[str, tuple[str, dict[str, Any]]] = {
    "cifar-proxy": ("NAS-CIFAR10-v0", {"fidelity": FIDELITIES["proxy"].replace(precision="bf16")}),
    "cifar-smoke": ("NAS-CIFAR10-v0", {"fidelity": "smoke"}),
    "cifar-shared": ("NAS-CIFAR10-v0", {"weight_sharing": True}),
    "cifar-shared-variant": (
        "NAS-CIFAR10-v0",
        {"weight_sharing": True, "shared_steps": 3, "valid_batch": 64, "predict_stride": True},
    ),
    "nb201-smoke": ("NAS-Bench-201-v0", {"table_path": None, "fidelity": "smoke", "test_images": 64}),
    "ptb-paper": ("NAS-PTB-v0", {"fidelity": "paper"}),
}
"""Envs whose evaluator fingerprint (the cache key) is recorded; none of them loads data to say it.

The proxies' ``precision="auto"`` resolves by a timing on the machine (bf16 where it is faster), and
the resolved precision is part of the key: they were recorded on a CPU where auto meant bf16, so
they are made with bf16 spelled out, which gives the same key on every machine.

The ``paper`` presets of the CNN envs are recorded from their evaluators: making such an env times
the recipe on this CPU to warn of its cost, which would take most of this test's time."""


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else value.hex()
    return value


def _evaluation(arch: str, reward: float, info: dict[str, Any], timed: bool) -> dict[str, Any]:
    kept = {k: _plain(v) for k, v in sorted(info.items()) if not (timed and k in VOLATILE)}
    return {"arch": arch, "reward": float(reward).hex(), "info": kept}


def fingerprint(env: gym.Env[Any, Any]) -> str:
    """The cache key of an env's evaluator (the one accessor this test depends on)."""
    return str(env.unwrapped.evaluation.fingerprint)  # type: ignore[attr-defined]


def fingerprints() -> dict[str, str]:
    """Evaluator fingerprint of each env of :data:`FINGERPRINT_ENVS`, and of the paper presets."""
    out = {
        "cifar-paper": CifarTrainingEvaluator("paper").fingerprint,
        "nb201-paper": NB201TrainingEvaluator("paper").fingerprint,
        # The NB201 env's default trained mode: the proxy preset and its network, bf16 spelled out.
        "nb201-proxy": NB201TrainingEvaluator(
            NB201_FIDELITIES["proxy"].replace(precision="bf16"),
            channels=NB201_NETWORKS["proxy"][0],
            cells_per_stage=NB201_NETWORKS["proxy"][1],
        ).fingerprint,
    }
    for name, (env_id, kwargs) in FINGERPRINT_ENVS.items():
        env = gym.make(env_id, **kwargs)
        out[name] = fingerprint(env)
        env.close()
    return out


SEARCHES: dict[str, tuple[str, dict[str, Any], int]] = {
    "random": ("random", {}, 12),
    "evolution": ("evolution", {"population_size": 4, "tournament_size": 2}, 12),
    "local_search": ("local_search", {"initial_random": 3, "model_samples": 6}, 12),
    "reinforce": ("reinforce", {"batch_size": 4}, 12),
    "reinforce_nb201": ("reinforce_nb201", {}, 12),
}
"""Agent runs recorded on each table env: name -> (agent, settings, budget)."""


def table_envs(tmp: Path, data_root: Path) -> dict[str, dict[str, Any]]:
    """The table envs searched: the real NB201 table and the synthetic one of the tests."""
    synthetic = tmp / "nb201_synthetic.csv"
    write_nb201_table(synthetic)
    return {
        "nb201-real": {"table_path": str(data_root / REAL_TABLE)},
        "nb201-synthetic": {"table_path": str(synthetic)},
    }


def searches(tmp: Path, data_root: Path) -> dict[str, list[dict[str, Any]]]:
    """Every evaluation of a seeded search per (table env, agent), plus the synthetic CNN env."""
    out: dict[str, list[dict[str, Any]]] = {}
    for env_name, kwargs in table_envs(tmp, data_root).items():
        for run, (agent_name, overrides, budget) in SEARCHES.items():
            env = gym.make("NAS-Bench-201-v0", **kwargs)
            agent = make_agent(agent_name, env, seed=3, **overrides)
            history = agent.search(budget)
            env.close()
            out[f"{env_name}/{run}"] = [_evaluation(e.arch, e.reward, e.info, timed=False) for e in history]
    for run in ("reinforce", "evolution"):
        env = make_synthetic_env(num_layers=3)
        agent_name, overrides, budget = SEARCHES[run]
        history = make_agent(agent_name, env, seed=5, **overrides).search(budget)
        env.close()
        out[f"synthetic-cnn/{run}"] = [_evaluation(e.arch, e.reward, e.info, timed=False) for e in history]
    return out


TRAIN_THREADS = 2
"""Torch threads of the trained episodes, as recorded: a float sum's order, hence its bits, depends on it."""


def trained_episodes(data_root: Path) -> dict[str, list[dict[str, Any]]]:
    """Seeded episodes that really train: one smoke CIFAR child and two weight-sharing scores."""
    with torch_threads(TRAIN_THREADS):  # an earlier test may have left the process at one thread
        return _trained_episodes(data_root)


def _trained_episodes(data_root: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    runs = {
        "cifar-smoke": {"num_layers": 2, "max_layers": 2, "fidelity": "smoke"},
        "cifar-shared": {
            "num_layers": 2,
            "max_layers": 2,
            "weight_sharing": True,
            "valid_batch": 32,
            "shared_kwargs": {"batch_size": 16, "resolution": 8, "warmup_steps": 2},
        },
    }
    for name, kwargs in runs.items():
        env = gym.make("NAS-CIFAR10-v0", data_dir=str(data_root), device="cpu", **kwargs)
        env.reset(seed=7)
        evaluations = []
        for actions in ([1, 1, 1, 1, 1, 1, 1], [0, 2, 3, 1, 3, 0, 0]):
            for action in actions:
                _, reward, terminated, _, info = env.step(action)
            assert terminated
            info.pop("action_mask")
            evaluations.append(_evaluation(str(info["arch"]), float(reward), info, timed=True))
            env.reset()
        env.close()
        out[name] = evaluations
    return out


def record(data_root: Path, tmp: Path) -> dict[str, Any]:
    """Everything the fixture holds, computed by the current code."""
    return {
        "fingerprints": fingerprints(),
        "searches": searches(tmp, data_root),
        "trained": trained_episodes(data_root),
    }


if __name__ == "__main__":
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        golden = record(Path(os.environ["NAS_ENV_DATA"]), Path(folder))
    FIXTURE.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    print(f"wrote {FIXTURE}", file=sys.stderr)
