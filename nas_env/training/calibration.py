"""Seconds per child on this machine: a short timing of reference children, cached per machine.

One measurement serves two purposes: ``nas-search`` states the time per child and the ETA of its
budget before the first child trains, and ``precision="auto"`` picks whichever of fp32 and bf16
trained the reference children faster here (bf16 is faster on some CPUs with AVX512-BF16 and
slower on others, so a CPU flag alone cannot decide).

The timing trains each reference child for one warm-up and one to :data:`TIMED_STEPS` timed
minibatches of random inputs (:func:`~nas_env.training.cifar.measure_seconds_per_child`, or
:func:`~nas_env.training.ptb.measure_seconds_per_lm` for language models), so that a cold start
prints its plan within seconds, and scales to the recipe's steps. Random children of one space
differ several-fold in cost, so the figure is a range over :data:`REFERENCE_CHILDREN` of them,
not a promise for the next child. The result is cached in ``~/.cache/nas_env/calibration.json``
(``$NAS_ENV_CACHE`` overrides the folder), keyed by CPU model, torch version, torch threads,
device, search space, recipe and timing method: the same machine never measures twice.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas_env.threads import torch_threads
from nas_env.training.recipes import Fidelity, bf16_is_fast

CACHE_ENV_VAR = "NAS_ENV_CACHE"
"""Environment variable naming the folder of the calibration cache (default ``~/.cache/nas_env``)."""
CACHE_FILE = "calibration.json"
REFERENCE_SEED = 0
"""Seed of the reference children drawn from the search space."""
REFERENCE_CHILDREN = 3
"""Reference children timed per precision (random children differ several-fold in cost)."""
TIMED_STEPS = 3
"""Minibatches timed per reference child at most (after one warm-up)."""
TIME_BOX_S = 0.25
"""A reference child's timing stops after the first timed minibatch ending this long after its
warm-up: a slow child costs two minibatches, a light one up to ``TIMED_STEPS + 1``."""
TIMED_PIXELS = 16 * 16 * 16
"""Pixels per timed CNN minibatch: 16 images at 16x16, 4 at 32x32 (time per image is nearly flat
in the batch size at these sizes, so small minibatches time a child cheaply)."""
METHOD = "steps<=3,box=0.25s,pixels=4096"
"""The timing method, part of the cache key (figures timed another way are timed again)."""
Measure = Callable[[nn.Module, Any, torch.device | str], float]
"""Estimated seconds of one child: ``measure(model, recipe, device)``."""


def cache_path() -> Path:
    """The calibration cache file (``$NAS_ENV_CACHE/calibration.json`` or ``~/.cache/nas_env/...``)."""
    folder = os.environ.get(CACHE_ENV_VAR)
    return (Path(folder) if folder else Path.home() / ".cache" / "nas_env").expanduser() / CACHE_FILE


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class Calibration:
    """Measured seconds per reference child, per precision, on one machine set-up."""

    key: str
    """What the figures depend on: CPU, torch version, threads, device, space and recipe."""
    cpu: str
    """The CPU model, for messages."""
    threads: int
    """Torch threads the children were timed with."""
    seconds: dict[str, list[float]]
    """Estimated training seconds of each reference child at the full recipe, per precision."""
    measured_at: str
    """When the timing ran (UTC, ISO format)."""
    cached: bool = field(default=False, compare=False)
    """Read from the cache (not timed by this call)."""

    @property
    def fastest_precision(self) -> str:
        """The precision whose reference children trained fastest in total (``fp32`` on ties)."""
        return min(sorted(self.seconds), key=lambda p: (sum(self.seconds[p]), p != "fp32"))

    def per_child(self, precision: str | None = None) -> tuple[float, float, float]:
        """Lowest, mean and highest seconds per reference child at ``precision`` (default: fastest)."""
        values = self.seconds[precision or self.fastest_precision]
        return min(values), float(np.mean(values)), max(values)


def calibration_key(
    fidelity: Any,
    device: torch.device | str,
    threads: int,
    space: str,
    precisions: Sequence[str],
    method: str = METHOD,
) -> str:
    """The cache key: same key, same machine set-up, recipe (precision aside) and method, same figures."""
    recipe = (fidelity.replace(precision="fp32") if hasattr(fidelity, "precision") else fidelity).fingerprint
    parts = (cpu_model(), torch.__version__, f"threads={threads}", str(torch.device(device)), space, recipe)
    return " | ".join((*parts, ",".join(precisions), method))


def timed_images(fidelity: Fidelity) -> int:
    """Images per timed CNN minibatch at the recipe's resolution (:data:`TIMED_PIXELS`)."""
    return max(2, TIMED_PIXELS // fidelity.resolution**2)


def time_cnn_child(model: nn.Module, fidelity: Fidelity, device: torch.device | str) -> float:
    """:data:`Measure` of a CNN child: :func:`timed_images` random images per timed step."""
    from nas_env.training.cifar import measure_seconds_per_child

    batch = timed_images(fidelity)
    return measure_seconds_per_child(model, fidelity, device, TIMED_STEPS, batch, TIME_BOX_S)


def time_language_model(model: nn.Module, fidelity: Any, device: torch.device | str) -> float:
    """:data:`Measure` of a PTB language model: the recipe's own minibatch shape."""
    from nas_env.training.ptb import measure_seconds_per_lm

    return measure_seconds_per_lm(model, fidelity, device, TIMED_STEPS, TIME_BOX_S)  # type: ignore[arg-type]


def calibrate(
    fidelity: Any,
    reference_models: Sequence[Callable[[], nn.Module]],
    space: str,
    device: torch.device | str = "cpu",
    threads: int | None = None,
    refresh: bool = False,
    precisions: Sequence[str] | None = None,
    measure: Measure = time_cnn_child,
    method: str = METHOD,
) -> Calibration:
    """Time ``reference_models`` at ``fidelity`` in fp32 and (where the CPU has it) bf16; cached.

    Timing each reference child takes two to four minibatches; the same key is never timed twice.

    Args:
        fidelity: The recipe (a ``Fidelity``, or a ``PtbFidelity`` with ``measure`` set to
            :func:`time_language_model`); its ``precision`` is ignored (each precision is timed).
        reference_models: Builders of the reference children (seeded, so every machine times the
            same networks).
        space: The search space's name (part of the cache key).
        device: Where children train.
        threads: Torch threads to time with (default: the current setting).
        refresh: Measure again even when the cache holds this key.
        precisions: The precisions to time (default: fp32, and bf16 where the CPU has it; recipes
            without a precision: fp32 only).
        measure: Estimates one child's seconds from a few timed steps.
        method: Names ``measure`` in the cache key.

    Returns:
        The figures, from the cache when this machine measured them before.
    """
    threads = threads or torch.get_num_threads()
    has_precision = hasattr(fidelity, "precision")
    if precisions is None:
        precisions = ("fp32", "bf16") if has_precision and bf16_is_fast(device) else ("fp32",)
    key = calibration_key(fidelity, device, threads, space, precisions, method)
    path = cache_path()
    cache = _read_cache(path)
    if not refresh and key in cache:
        return replace(Calibration(**cache[key]), cached=True)
    seconds: dict[str, list[float]] = {}
    with torch_threads(threads):
        for precision in precisions:
            recipe = fidelity.replace(precision=precision) if has_precision else fidelity
            seconds[precision] = []
            for build in reference_models:
                torch.manual_seed(REFERENCE_SEED)
                seconds[precision].append(measure(build(), recipe, device))
    measured_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result = Calibration(key, cpu_model(), threads, seconds, measured_at)
    cache[key] = {k: v for k, v in asdict(result).items() if k != "cached"}
    _write_cache(path, cache)
    return result


def resolve_precision(
    fidelity: Fidelity, device: torch.device | str, reference_model: Callable[[], nn.Module]
) -> Fidelity:
    """``fidelity`` with ``precision="auto"`` made concrete by what this machine measures.

    Where the device can run bf16 (CPUs with AMX or AVX512-BF16), ``reference_model`` is timed in
    fp32 and in bf16 at this recipe, :data:`PRECISION_STEPS` minibatches of
    :data:`PRECISION_IMAGES` images each after a warm-up (once per machine, cached), and the
    faster one is chosen: on some such CPUs bf16 is the slower. Elsewhere (other CPUs, CUDA) the
    answer is fp32 without timing. Other precisions pass through.
    """
    if fidelity.precision != "auto":
        return fidelity
    if not bf16_is_fast(device):
        return fidelity.replace(precision="fp32")
    timed = calibrate(
        fidelity,
        [reference_model],
        "reference child",
        device,
        measure=_time_precision,
        method=PRECISION_METHOD,
    )
    return fidelity.replace(precision=timed.fastest_precision)


PRECISION_STEPS, PRECISION_IMAGES = 2, 64
"""Timed minibatches and their images when bf16 and fp32 are compared (full-size minibatches: the
two precisions' speeds differ most in the large matrix products)."""
PRECISION_METHOD = f"steps={PRECISION_STEPS},batch={PRECISION_IMAGES}"


def _time_precision(model: nn.Module, fidelity: Fidelity, device: torch.device | str) -> float:
    from nas_env.training.cifar import measure_seconds_per_child

    return measure_seconds_per_child(model, fidelity, device, PRECISION_STEPS, PRECISION_IMAGES)


def reference_archs(space: Any, count: int = REFERENCE_CHILDREN) -> list[Any]:
    """``count`` architectures drawn uniformly from ``space`` with :data:`REFERENCE_SEED`."""
    rng = np.random.default_rng(REFERENCE_SEED)
    return [space.decode(space.sample(rng)) for _ in range(count)]


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, cache: dict[str, Any]) -> None:
    """Write atomically; a cache that cannot be written (read-only home) only costs a re-measurement."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=2) + "\n")
        tmp.replace(path)
    except OSError:
        pass
