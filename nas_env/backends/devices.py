"""Several children per device: which devices the workers of a pool use, and how many per device.

One child rarely fills a GPU: the 6-layer children of the paper's space spend most of each step
launching small kernels (docs/parallel.md measures it), so several children trained at once in
separate processes keep the device busy. :class:`~nas_env.backends.pool.PoolBackend`
takes ``devices`` and ``children_per_device`` and starts one worker per slot; each worker pins
itself to its slot's device (:func:`pin_to_device`). On CPU the same path runs with
``devices=["cpu"]``: ``children_per_device`` workers with the cores divided between them.

>>> [str(d) for d in resolve_devices(["cpu"], "cpu")]
['cpu']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from nas_env.backends.threads import available_cpus

DeviceSpec = str | torch.device
"""A device as users write it: ``"cpu"``, ``"cuda:1"`` or a ``torch.device``."""

MAX_DEFAULT_CHILDREN = 8
"""The most children per GPU the default gives (``benchmarks/bench_gpu.py`` measures 1 to 8)."""
DEFAULT_CHILD_MEMORY_GB = 6.0
"""Device memory the default allows each child: the activations of a 15-layer child at batch 128
with room to spare, plus the CUDA context and CIFAR-10 on the device (``docs/parallel.md``)."""


def allowed_devices(device_type: str) -> list[str]:
    """The device names of ``device_type`` this machine has (``["cpu"]``; ``["cuda:0", ...]``)."""
    if device_type == "cpu":
        return ["cpu"]
    if device_type == "cuda":
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return [device_type]


def resolve_devices(devices: Sequence[DeviceSpec] | None, evaluator_device: DeviceSpec) -> list[torch.device]:
    """The devices a pool's workers train on, checked against this machine and the evaluator.

    Args:
        devices: Device names; ``None``: every device of the evaluator's type (all GPUs, or the CPU).
            A bare ``"cuda"`` means ``"cuda:0"``.
        evaluator_device: The evaluator's device. Workers keep its type (its recipe, and so the
            cache key, was resolved for that type) and change only the index.

    Raises:
        ValueError: An unknown device, a device of another type than the evaluator's, a repeat,
            or an empty list; the message names the allowed devices.
    """
    kind = torch.device(evaluator_device).type
    allowed = allowed_devices(kind)
    if devices is None:
        devices = allowed
    if isinstance(devices, str | torch.device) or len(devices) == 0:
        raise ValueError(f"devices={devices!r} must be a non-empty list; expected names from {allowed}")
    out: list[torch.device] = []
    for spec in devices:
        try:
            device = torch.device(spec)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"devices entry {spec!r} is not a device; expected one of {allowed}") from exc
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", 0)
        if str(device) not in allowed:
            raise ValueError(
                f"devices entry {str(spec)!r} is not allowed for an evaluator on {kind!r}; expected one of "
                f"{allowed} (workers train on the evaluator's device type: make the evaluator with "
                "device='cuda' to use GPUs)"
            )
        if device in out:
            raise ValueError(f"devices entry {str(spec)!r} is repeated; use children_per_device for more")
        out.append(device)
    return out


def default_children_per_device(devices: Sequence[torch.device], memory_per_child_gb: float | None) -> int:
    """Children per device when the user gives none.

    On CPU one per core (each with one torch thread). On GPUs the fewest of: the cores per GPU
    (each worker needs a core to launch kernels), the device memory over ``memory_per_child_gb``
    (:data:`DEFAULT_CHILD_MEMORY_GB` when ``None``), and :data:`MAX_DEFAULT_CHILDREN`.
    """
    cores = available_cpus()
    if devices[0].type != "cuda":
        return max(1, cores // len(devices))
    per_child = DEFAULT_CHILD_MEMORY_GB if memory_per_child_gb is None else memory_per_child_gb
    smallest = min(torch.cuda.get_device_properties(d).total_memory for d in devices) / 2**30
    return max(1, min(MAX_DEFAULT_CHILDREN, cores // len(devices), int(smallest // per_child)))


def check_memory_per_child(memory_per_child_gb: float | None, devices: Sequence[torch.device]) -> None:
    """Raise ``ValueError`` unless ``memory_per_child_gb`` is ``None`` or a positive size on GPUs."""
    if memory_per_child_gb is None:
        return
    if isinstance(memory_per_child_gb, bool) or not isinstance(memory_per_child_gb, int | float):
        raise ValueError(f"memory_per_child_gb={memory_per_child_gb!r} must be a number of GiB or None")
    if not memory_per_child_gb > 0:
        raise ValueError(f"memory_per_child_gb={memory_per_child_gb!r} must be > 0 (GiB per child) or None")
    if devices[0].type != "cuda":
        raise ValueError(
            f"memory_per_child_gb={memory_per_child_gb!r} applies to CUDA devices only; the devices are "
            f"{[str(d) for d in devices]}"
        )


def pin_to_device(evaluator: Any, device: torch.device, memory_per_child_gb: float | None = None) -> None:
    """Make this worker process train ``evaluator``'s children on ``device`` (runs in the worker).

    On CUDA it also makes ``device`` the current device and, with ``memory_per_child_gb``, caps
    this process's share of its memory (an over-large child then fails alone, out of memory,
    instead of starving the other children on the device). Evaluators that train expose
    ``device``; it is replaced here (same type, so the same recipe and cache key).
    """
    if device.type == "cuda":
        torch.cuda.set_device(device)
        if memory_per_child_gb is not None:
            total = torch.cuda.get_device_properties(device).total_memory / 2**30
            torch.cuda.set_per_process_memory_fraction(min(1.0, memory_per_child_gb / total), device)
    if hasattr(evaluator, "device"):
        evaluator.device = device
