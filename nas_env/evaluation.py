"""Evaluation as a service: from an architecture to a stored reward and the terminal ``info``.

An :class:`Evaluation` composes an evaluator (WHAT gives a score), a backend (WHERE it runs), the
results store (the cache, keyed by architecture string and evaluator fingerprint) and the reward
function. The env calls it when an episode ends; agents that keep several children in flight
(:mod:`agents.distributed`) call it directly. Weight sharing is another kind of evaluation
(:class:`SharedWeightEvaluation`): scored in order, in this process, never served from the cache.

>>> from nas_env.evaluation import Evaluation                        # doctest: +SKIP
>>> evaluation = Evaluation(evaluator, reward_fn, cache_path="runs/x/results.sqlite")  # doctest: +SKIP
>>> reward, info = evaluation.evaluate(arch, root_seed=0)           # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

from nas_env.backends.base import make_backend
from nas_env.evaluators.base import Evaluator
from nas_env.evaluators.weight_sharing import SHARED_STEP, SharedWeightEvaluator
from nas_env.evaluators.zero_cost import ZeroCostEvaluator, zero_cost_reward
from nas_env.records import EvalResult
from nas_env.rewards import FAILED_REWARD, RewardFn, compute_reward
from nas_env.store import ResultsStore

Scored = tuple[int, float, dict[str, Any]]
"""``(index in the archs given, reward, terminal info)``, as :meth:`Evaluation.evaluate_many` yields."""


def child_seed(root_seed: int, arch: str) -> int:
    """Training seed of a child: a fixed function of the run's root seed and the architecture string.

    Keying by the string (not by the order of sampling) makes a child's reward independent of
    when it was sampled, which keeps cached and fresh evaluations consistent.
    """
    digest = hashlib.sha256(f"{root_seed}:{arch}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class Evaluation:
    """Scores architectures through the results store, on a backend, into rewards and ``info``.

    Args:
        evaluator: Scores one architecture (its fingerprint keys the cache).
        reward_fn: Maps a successful result to the reward (a failed child gets ``FAILED_REWARD``).
        cache_path: SQLite results store shared by processes; ``None`` keeps it in memory.
        backend: Where children are evaluated: ``"local"``, ``"pool"`` or ``"ray"``.
        backend_kwargs: The backend's arguments (``{"num_workers": 2}``...).
    """

    claim_poll_s: float = 0.25
    """Seconds between looks at a shared store for a result that another process is training."""

    def __init__(
        self,
        evaluator: Evaluator,
        reward_fn: RewardFn,
        cache_path: str | os.PathLike[str] | None = None,
        backend: str = "local",
        backend_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.evaluator = evaluator
        self.reward_fn = reward_fn
        announce_cost = getattr(evaluator, "announce_cost", None)
        if announce_cost is not None:  # e.g. the paper recipe on CPU: say the hours before they start
            announce_cost()
        self.store = ResultsStore(cache_path)
        self.backend = make_backend(backend, evaluator, **(backend_kwargs or {}))

    @property
    def fingerprint(self) -> str:
        """The evaluator's fingerprint: the cache key of every result."""
        return self.evaluator.fingerprint

    def use_backend(self, name: str, **kwargs: Any) -> None:
        """Evaluate on another backend from now on (the previous one is closed)."""
        self.backend.close()
        self.backend = make_backend(name, self.evaluator, **kwargs)

    def evaluate(self, arch: Any, root_seed: int) -> tuple[float, dict[str, Any]]:
        """Score one architecture (what an episode's last step does): its reward and terminal ``info``."""
        _, reward, info = next(self.evaluate_many([arch], root_seed))
        return reward, info

    def evaluate_many(self, archs: Sequence[Any], root_seed: int) -> Iterator[Scored]:
        """Score several architectures at once, yielding each as it completes.

        Cache hits come first; the misses are all submitted to the backend before the first
        yield and come back as they finish (in parallel on the ``pool`` and ``ray`` backends). An
        architecture repeated in ``archs`` is trained once. Every attempt is stored.

        With a store file shared by several processes (vector envs, distributed replicas), a miss
        is claimed in the store before it is trained: one that another live process is training
        is waited for (polling the store every ``claim_poll_s``) and returned as cached, so each
        architecture is trained once across all of them.

        Args:
            archs: Architectures of the evaluator's space.
            root_seed: The run's root seed (each child trains with :func:`child_seed`).

        Yields:
            ``(index in archs, reward, terminal info)``.
        """
        store, fingerprint = self.store, self.fingerprint
        hits: list[tuple[int, str, EvalResult]] = []
        todo: dict[str, list[int]] = {}  # architecture string -> its indices in archs
        pending: dict[str, Any] = {}  # not trained here yet: claimed elsewhere, or to claim
        for i, arch in enumerate(archs):
            arch_str = arch.to_str()
            hit = store.lookup(arch_str, fingerprint)
            if hit is not None:
                hits.append((i, arch_str, hit[0]))
            elif arch_str in todo:
                todo[arch_str].append(i)
            else:
                todo[arch_str], pending[arch_str] = [i], arch
        tickets: dict[int, str] = {}  # this call's children in flight -> their strings
        try:
            waiting = self._claim_and_submit(pending, tickets, root_seed)
            for i, arch_str, result in hits:
                yield (i, *self._finish(arch_str, result, cached=True))
            while tickets or waiting:
                yield from self._harvest(tickets, todo, self.claim_poll_s if waiting else None)
                if waiting:  # between completions: claim what was given up, collect what others stored
                    waiting = self._claim_and_submit(waiting, tickets, root_seed)
                    yield from self._results_from_elsewhere(waiting, todo)
        finally:  # claims of children this call will not finish (an error, an abandoned generator)
            for arch_str in tickets.values():
                store.release(arch_str, fingerprint)

    def state_dict(self) -> dict[str, Any]:
        """State of the evaluation itself (none: every result lives in the store)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`.

        Raises:
            ValueError: ``state`` holds shared weights, which this evaluation has no use for.
        """
        if state:
            raise ValueError("this state holds shared weights; make the env with weight_sharing=True")

    def close(self) -> None:
        """Close the results store connection and the backend."""
        self.store.close()
        self.backend.close()

    # ---- claims, tickets and results ----------------------------------------------------------

    def _claim_and_submit(
        self, archs: dict[str, Any], tickets: dict[int, str], root_seed: int
    ) -> dict[str, Any]:
        """Submit the architectures this process may train; return those another process trains now."""
        waiting = {}
        for arch_str, arch in archs.items():
            if self.store.claim(arch_str, self.fingerprint) == "claimed":
                tickets[self.backend.submit(arch, child_seed(root_seed, arch_str))] = arch_str
            else:  # "busy", or "done" since the first look (collected by the caller)
                waiting[arch_str] = arch
        return waiting

    def _harvest(
        self, tickets: dict[int, str], todo: dict[str, list[int]], timeout: float | None
    ) -> list[Scored]:
        """Store every child of this call that completes within ``timeout`` s; return their yields.

        All are stored (and their claims released) before any is yielded, so a caller that stops
        iterating loses nothing that was trained. With nothing in flight it sleeps ``timeout``.
        """
        if not tickets:
            time.sleep(timeout or 0.0)
            return []
        out = []
        fingerprint = self.fingerprint
        for done in self.backend.harvest(timeout, tickets=tickets):
            arch_str = tickets.pop(done.ticket)
            for attempt in done.failed_attempts:  # workers that died: kept, never cached
                self.store.add(arch_str, fingerprint, attempt, FAILED_REWARD)
            first, *repeats = todo[arch_str]
            out.append((first, *self._finish(arch_str, done.result, cached=False)))
            self.store.release(arch_str, fingerprint)
            out += [(i, *self._finish(arch_str, done.result, cached=True)) for i in repeats]
        return out

    def _results_from_elsewhere(self, waiting: dict[str, Any], todo: dict[str, list[int]]) -> list[Scored]:
        """Yields for waited-for architectures whose results other processes have stored."""
        out = []
        for arch_str in list(waiting):
            hit = self.store.lookup(arch_str, self.fingerprint)
            if hit is not None:
                del waiting[arch_str]
                out += [(i, *self._finish(arch_str, hit[0], cached=True)) for i in todo[arch_str]]
        return out

    def _finish(self, arch_str: str, result: EvalResult, cached: bool) -> tuple[float, dict[str, Any]]:
        """Reward and terminal ``info`` of one result; a fresh result is stored."""
        reward = float(compute_reward(self.reward_fn, result))
        if not cached:
            self.store.add(arch_str, self.fingerprint, result, reward)
        info: dict[str, Any] = {
            "arch": arch_str,
            "cached": cached,
            "eval_status": result.status,
            "error": result.error,
            "num_params": result.num_params,
            "train_seconds": result.cost_s,
            "cost_s": result.cost_s,
            "seed": result.seed,
        }
        for name in self.evaluator.metric_names:
            info[name] = float(result.metrics.get(name, float("nan")))
        return reward, info


class SharedWeightEvaluation(Evaluation):
    """Weight sharing (ENAS) as a kind of evaluation: scored in order, here, and never served from the cache.

    A score depends on the shared weights of its moment, so every score is recorded in the store
    with its ``shared_step`` and none is looked up. The shared weights are created at the first
    evaluation from the run's root seed and persist until the evaluation is closed;
    :meth:`state_dict` carries them into checkpoints. Children run in this process only.

    Args:
        evaluator: The weight-sharing evaluator (it owns the supernet).
        reward_fn: Maps a successful score to the reward.
        cache_path: SQLite results store (every score is recorded); ``None`` keeps it in memory.
    """

    evaluator: SharedWeightEvaluator

    def __init__(
        self,
        evaluator: SharedWeightEvaluator,
        reward_fn: RewardFn,
        cache_path: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(evaluator, reward_fn, cache_path)

    def use_backend(self, name: str, **kwargs: Any) -> None:
        """Weight sharing scores children where the shared weights live.

        Raises:
            ValueError: Any backend but ``"local"``.
        """
        if name != "local":
            raise ValueError(f"weight sharing needs backend='local', got backend={name!r}")
        super().use_backend(name, **kwargs)

    def evaluate_many(self, archs: Sequence[Any], root_seed: int) -> Iterator[Scored]:
        """Score each architecture, then train the shared weights on it, one after the other.

        Yields:
            ``(index in archs, reward, terminal info)`` in the order given; ``info`` also has
            ``weight_sharing=True`` and ``shared_step``.
        """
        self.evaluator.start(child_seed(root_seed, "<shared weights>"))
        for i, arch in enumerate(archs):
            arch_str = arch.to_str()
            result = self.evaluator.evaluate(arch, child_seed(root_seed, arch_str))
            reward, info = self._finish(arch_str, result, cached=False)
            info["weight_sharing"] = True
            info[SHARED_STEP] = int(result.metrics[SHARED_STEP])
            yield i, reward, info

    def state_dict(self) -> dict[str, Any]:
        """Shared weights, optimizer and minibatch streams (empty before the first child).

        Plain types and tensors: ``torch.save`` it, and load it with ``weights_only=True``.
        """
        return self.evaluator.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`, so that the next child is scored as in the run that saved it.

        Raises:
            ValueError: Shared weights saved with other weight-sharing settings.
        """
        self.evaluator.load_state_dict(state)


def zero_cost_evaluation(
    space: str,
    zero_cost: str | None,
    data_dir: str | os.PathLike[str] | None,
    device: str,
    download: bool,
    cache_path: str | os.PathLike[str] | None,
    backend: str,
    backend_kwargs: dict[str, Any] | None,
    level: str = "word",
) -> Evaluation:
    """The evaluation service of an env's ``fidelity="zero_cost"`` mode: its reward is the score.

    Args:
        space: The env's space (:data:`nas_env.evaluators.zero_cost.SPACES`).
        zero_cost: The score; ``None``: ``"ensemble"`` (PTB: ``"params"``).
        data_dir: Data root; device, download, cache, backend: as for trained rewards.
        device: Where the networks are scored.
        download: Download the dataset when it is not found.
        cache_path: The results store (zero-cost results have their own fingerprint).
        backend: ``"local"``, ``"pool"`` or ``"ray"``.
        backend_kwargs: The backend's arguments.
        level: PTB's corpus level.
    """
    name = zero_cost or ("params" if space == "ptb" else "ensemble")
    evaluator = ZeroCostEvaluator(
        space, name, data_dir=data_dir, device=device, download=download, level=level
    )
    return Evaluation(evaluator, zero_cost_reward, cache_path, backend, backend_kwargs)
