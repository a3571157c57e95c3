"""The parameter server of the distributed controller: shards, the budget keeper, and in-process stand-ins.

Zoph & Le (ICLR 2017), section 3.4: the controller's parameters are split over ``S`` shards that
apply the replicas' gradients asynchronously. Each class here is a Ray actor in a distributed run,
or is called in this process (through :class:`InProcess`) when there is one replica and one shard.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from torch import nn


def split_parameters(sizes: dict[str, int], shards: int) -> list[list[str]]:
    """Assign parameter names to ``shards`` shards, largest first onto the lightest shard.

    Raises:
        ValueError: More shards than parameter tensors.
    """
    if shards > len(sizes):
        raise ValueError(f"shards={shards} exceeds the controller's {len(sizes)} parameter tensors")
    groups: list[list[str]] = [[] for _ in range(shards)]
    load = [0] * shards
    for name in sorted(sizes, key=lambda n: (-sizes[n], n)):
        i = load.index(min(load))
        groups[i].append(name)
        load[i] += sizes[name]
    return groups


class ParameterShard:
    """One parameter-server shard: a slice of the controller's parameters and its Adam state.

    ``push`` adds a gradient; once ``grads_per_update`` have arrived their mean is applied with
    Adam (elementwise, so S shards step exactly as one optimizer over all parameters would).
    """

    def __init__(
        self,
        params: dict[str, torch.Tensor],
        learning_rate: float,
        grads_per_update: int,
        optimizer_state: dict[str, Any] | None = None,
    ) -> None:
        torch.set_num_threads(1)
        self.params = {n: nn.Parameter(p.detach().clone()) for n, p in params.items()}
        self.optimizer = torch.optim.Adam(list(self.params.values()), lr=learning_rate)
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)
        self.grads_per_update = grads_per_update
        self.version = 0
        self._sum: dict[str, torch.Tensor] = {}
        self._count = 0

    def pull(self) -> tuple[int, dict[str, torch.Tensor]]:
        """Updates applied so far and a copy of the parameters."""
        return self.version, {n: p.detach().clone() for n, p in self.params.items()}

    def push(self, grads: dict[str, torch.Tensor]) -> int:
        """Add one replica's gradient; apply the mean after ``grads_per_update``. Returns the version."""
        for n, g in grads.items():
            self._sum[n] = g.clone() if n not in self._sum else self._sum[n] + g
        self._count += 1
        if self._count == self.grads_per_update:
            for n, p in self.params.items():
                p.grad = self._sum[n] / self._count
            self.optimizer.step()
            self._sum, self._count = {}, 0
            self.version += 1
        return self.version

    def state(self) -> dict[str, Any]:
        """Parameters, optimizer state and version, for a checkpoint."""
        return {"params": self.pull()[1], "optimizer": self.optimizer.state_dict(), "version": self.version}


class Coordinator:
    """Keeps the budget (how many children may still be sampled) and collects evaluations.

    Args:
        claimed: Children sampled before (a resumed run's history).
        sink: In-process runs: called with each report at once (else reports wait for ``drain``).
    """

    def __init__(self, claimed: int, sink: Any = None) -> None:
        self.budget = claimed
        self.claimed = claimed
        self.sink = sink
        self.outstanding: dict[int, int] = {}
        self.reports: list[tuple[int, str, float, dict[str, Any]]] = []
        self.replica_states: dict[int, dict[str, Any]] = {}

    def set_budget(self, budget: int) -> None:
        """Total children of the run."""
        self.budget = budget

    def claim(self, replica: int, n: int) -> tuple[int, int]:
        """Let ``replica`` sample up to ``n`` more children: ``(granted, children sampled before)``."""
        granted = max(0, min(n, self.budget - self.claimed))
        before = self.claimed
        self.claimed += granted
        self.outstanding[replica] = self.outstanding.get(replica, 0) + granted
        return granted, before

    def report(self, replica: int, arch: str, reward: float, info: dict[str, Any]) -> None:
        """One evaluated child of ``replica``."""
        self.outstanding[replica] -= 1
        if self.sink is not None:
            self.sink(arch, reward, info)
        else:
            self.reports.append((replica, arch, reward, info))

    def drain(self) -> list[tuple[int, str, float, dict[str, Any]]]:
        """Reports since the last call, in arrival order."""
        out, self.reports = self.reports, []
        return out

    def release(self, replica: int) -> None:
        """``replica`` died: its claimed but unreported children go back to the budget."""
        self.claimed -= self.outstanding.pop(replica, 0)

    def set_replica_state(self, replica: int, state: dict[str, Any]) -> None:
        """Baseline and sampling RNG of ``replica`` after its last update (for checkpoints)."""
        self.replica_states[replica] = state

    def state(self) -> tuple[int, dict[int, dict[str, Any]]]:
        """Children sampled so far and every replica's state."""
        return self.claimed, dict(self.replica_states)


def identity(value: Any) -> Any:
    """``ray.get``'s stand-in in process: the value itself."""
    return value


class InProcess:
    """``handle.method.remote(*args)`` calls ``obj.method(*args)`` now (Ray's actor-call syntax)."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __getattr__(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(remote=getattr(self.obj, name))
